/* SPDX-License-Identifier: Apache-2.0 */
/* Era A (QEMU <= 8.1): migrate_transferred has 4 arguments; pending is the pre-8.0 migrate_pending. */
provider qemu {
probe migrate_set_state(const char * new_state);
probe migrate_pending(uint64_t size,uint64_t max,uint64_t pre,uint64_t compat,uint64_t post);
probe migration_bitmap_sync_start();
probe migration_bitmap_sync_end(uint64_t dirty_pages);
probe migration_thread_low_pending(uint64_t pending);
probe migrate_transferred(uint64_t tranferred,uint64_t time_spent,uint64_t bandwidth,uint64_t size);
};
