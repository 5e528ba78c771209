/* SPDX-License-Identifier: Apache-2.0 */
/* Era B (QEMU >= 8.2): migrate_transferred has 5 arguments. Same shape as QEMU's generated trace-dtrace-migration.dtrace. */
provider qemu {
probe migrate_set_state(const char * new_state);
probe migrate_pending_exact(uint64_t size,uint64_t pre,uint64_t post);
probe migrate_pending_estimate(uint64_t size,uint64_t pre,uint64_t post);
probe migration_bitmap_sync_start();
probe migration_bitmap_sync_end(uint64_t dirty_pages);
probe migration_thread_low_pending(uint64_t pending);
probe migrate_transferred(uint64_t transferred,uint64_t time_spent,uint64_t bandwidth,uint64_t avail_bw,uint64_t size);
};
