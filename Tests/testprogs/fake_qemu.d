/* SPDX-License-Identifier: Apache-2.0 */
/* Era B (QEMU >= 8.2): migrate_transferred has 5 arguments; QEMU 11.1's 8-argument pending query as well. Same shape as QEMU's generated trace-dtrace-migration.dtrace. */
provider qemu {
probe migrate_set_state(const char * new_state);
probe migrate_pending_exact(uint64_t size,uint64_t pre,uint64_t post);
probe migrate_pending_estimate(uint64_t size,uint64_t pre,uint64_t post);
probe migration_bitmap_sync_start();
probe migration_bitmap_sync_end(uint64_t dirty_pages);
probe migration_thread_low_pending(uint64_t pending);
probe qemu_savevm_query_pending(bool exact,bool final,uint64_t precopy,uint64_t stopcopy,uint64_t postcopy,uint64_t total,uint32_t switchover_ack_pending,uint32_t total_switchover_ack_pending);
probe migrate_transferred(uint64_t transferred,uint64_t time_spent,uint64_t bandwidth,uint64_t avail_bw,uint64_t size);
};
