// SPDX-License-Identifier: Apache-2.0
/*
 * fake_qemu: fires QEMU's migration USDT probes with known values.
 *
 * Built like QEMU's dtrace backend: `dtrace -DSTAP_SDT_V2 -h` for the
 * header and `dtrace -DSTAP_SDT_V2 -G` for the semaphore object, so every
 * probe has a semaphore. -DMT_ERA_A builds the 4-argument variant.
 *
 * usage: fake_qemu COUNT [--pace-us N] [--wait] [--context] [--thread] [--linger-ms N]
 *                  [--migrations M] [--exit-after K] [--query] [-name NAME]
 *   COUNT      number of migrate_transferred events (per migration)
 *   --pace-us  sleep N microseconds between events
 *   --wait     print "ready <pid>" and wait for SIGUSR1 before firing
 *   --context  also fire the context probes (states, pending, bitmap sync)
 *   --thread   fire from a second thread (like QEMU's migration thread) and
 *              print "tid <tid>" before the result line
 *   --migrations  run M migrations one after the other (default 1); with
 *              --context each one goes setup, active, ..., completed
 *   --exit-after  stop after K migrate_transferred events in all, mid-migration
 *              (no low_pending, no "completed"), print the result line and exit 0,
 *              like a QEMU that quits during a migration
 *   -name      ignored, as QEMU's VM name for `attach --all` to read from /proc/PID/cmdline
 *   --query    also fire QEMU 11.1's qemu_savevm_query_pending (not in the era-A build)
 *
 * Event i of migrate_transferred carries (values checked by the tests):
 *   a0 = 0x100000000 + i, a1 = 100 + i, a2 = 3 * i, a3 = 5 * i + 7, [a4 = UINT64_MAX - i]
 * Context (with --context): set_state("setup"), set_state("active"); per event
 * i: pending (estimate, and exact when i is even), bitmap_sync_start,
 * bitmap_sync_end(1000 + i); then low_pending(42), set_state("completed").
 * Query (with --query), per event i before migrate_transferred: exact = (i even), final = 0,
 * precopy = 9000 - i, stopcopy = 4096 + i, postcopy = 1000, total = their sum, ack = i % 3,
 * total ack = 2, passed as QEMU's typed parameters (bool, uint64_t, uint32_t: 1-, 8- and 4-byte
 * operands); after the last event a final query (1, 1, 0, 4096, 0, 4096, 2, 2).
 * -DMT_NO_TRANSFERRED leaves migrate_transferred out (no note), for the missing-probe test.
 * At exit it prints "fired <total> transferred <count> semaphore <value>", where
 * <count> is the number of migrate_transferred events actually fired.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_qemu_probes.h"

/* QEMU passes every argument as a typed uint64_t parameter of _nocheck__trace_*: 8-byte operands. */
#define U64(x) ((uint64_t)(x))

static unsigned long long fired;
static unsigned long long count;
static long pace_us;
static int context;
static long thread_tid;
static unsigned long long migrations = 1;
static unsigned long long exit_after;  /* 0: never */
static unsigned long long transferred;
static int query;

#ifndef MT_ERA_A
/* As QEMU's _nocheck__trace_qemu_savevm_query_pending() passes them: typed parameters. */
static void fire_query(bool exact, bool final, uint64_t precopy, uint64_t stopcopy, uint64_t postcopy,
		       uint32_t ack, uint32_t total_ack)
{
	QEMU_QEMU_SAVEVM_QUERY_PENDING(exact, final, precopy, stopcopy, postcopy, precopy + stopcopy + postcopy, ack,
				       total_ack);
	fired++;
}
#endif

static void set_state(const char *s)
{
	QEMU_MIGRATE_SET_STATE(s);
	fired++;
}

/* One migration; returns 0 when --exit-after cut it short. */
static int fire_migration(void)
{
	unsigned long long i;

	if (context) {
		set_state("setup");
		set_state("active");
	}
	for (i = 0; i < count; i++) {
		if (context) {
#ifdef MT_ERA_A
			QEMU_MIGRATE_PENDING(U64(10000 - i), U64(5000), U64(9000 - i), U64(0), U64(1000));
			fired++;
#else
			QEMU_MIGRATE_PENDING_ESTIMATE(U64(10000 - i), U64(9000 - i), U64(1000));
			fired++;
			if (i % 2 == 0) {
				QEMU_MIGRATE_PENDING_EXACT(U64(20000 - i), U64(19000 - i), U64(1000));
				fired++;
			}
#endif
			QEMU_MIGRATION_BITMAP_SYNC_START();
			QEMU_MIGRATION_BITMAP_SYNC_END(U64(1000 + i));
			fired += 2;
		}
#ifndef MT_ERA_A
		if (query)
			fire_query(i % 2 == 0, false, U64(9000 - i), U64(4096 + i), U64(1000), (uint32_t)(i % 3), 2);
#endif
#if defined(MT_NO_TRANSFERRED)
		/* a binary with qemu probes but no migrate_transferred */
#elif defined(MT_ERA_A)
		QEMU_MIGRATE_TRANSFERRED(U64(0x100000000ULL + i), U64(100 + i), U64(3 * i), U64(5 * i + 7));
		fired++;
#else
		QEMU_MIGRATE_TRANSFERRED(U64(0x100000000ULL + i), U64(100 + i), U64(3 * i), U64(5 * i + 7),
				 U64(UINT64_MAX - i));
		fired++;
#endif
#if !defined(MT_NO_TRANSFERRED)
		transferred++;
#endif
		if (exit_after && transferred >= exit_after)
			return 0;
		if (pace_us > 0)
			usleep((useconds_t)pace_us);
	}
#ifndef MT_ERA_A
	if (query)
		fire_query(true, true, U64(0), U64(4096), U64(0), 2, 2);
#endif
	if (context) {
		QEMU_MIGRATION_THREAD_LOW_PENDING(U64(42));
		fired++;
		set_state("completed");
	}
	return 1;
}

static void *fire_all(void *unused)
{
	unsigned long long m;

	(void)unused;
	thread_tid = (long)syscall(SYS_gettid);
	for (m = 0; m < migrations; m++)
		if (!fire_migration())
			break;
	return NULL;
}

/* --linger-ms: stay alive this long after the last event, like a QEMU that outlives its migration. */
static long linger_ms;

int main(int argc, char **argv)
{
	int wait = 0, use_thread = 0, a;
	unsigned short sem_seen;

	if (argc < 2) {
		fprintf(stderr, "usage: %s COUNT [--pace-us N] [--wait] [--context] [--thread] [--migrations M] [--exit-after K] [--linger-ms N] [--query]\n", argv[0]);
		return 2;
	}
	count = strtoull(argv[1], NULL, 10);
	for (a = 2; a < argc; a++) {
		if (strcmp(argv[a], "--pace-us") == 0 && a + 1 < argc)
			pace_us = strtol(argv[++a], NULL, 10);
		else if (strcmp(argv[a], "--wait") == 0)
			wait = 1;
		else if (strcmp(argv[a], "--context") == 0)
			context = 1;
		else if (strcmp(argv[a], "--thread") == 0)
			use_thread = 1;
		else if (strcmp(argv[a], "--migrations") == 0 && a + 1 < argc)
			migrations = strtoull(argv[++a], NULL, 10);
		else if (strcmp(argv[a], "--exit-after") == 0 && a + 1 < argc)
			exit_after = strtoull(argv[++a], NULL, 10);
		else if (strcmp(argv[a], "--query") == 0)
			query = 1;
		else if (strcmp(argv[a], "--linger-ms") == 0 && a + 1 < argc)
			linger_ms = strtol(argv[++a], NULL, 10);
		else if (strcmp(argv[a], "-name") == 0 && a + 1 < argc)
			a++;  /* QEMU's VM name: only read by migtrace, from /proc/PID/cmdline */
		else {
			fprintf(stderr, "unknown argument %s\n", argv[a]);
			return 2;
		}
	}

	if (wait) {
		sigset_t set;
		int sig;

		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		sigprocmask(SIG_BLOCK, &set, NULL);
		printf("ready %d\n", (int)getpid());
		fflush(stdout);
		sigwait(&set, &sig);
	}
	sem_seen = qemu_migrate_transferred_semaphore;

	if (use_thread) {
		pthread_t t;

		if (pthread_create(&t, NULL, fire_all, NULL) != 0 || pthread_join(t, NULL) != 0) {
			fprintf(stderr, "pthread failed\n");
			return 1;
		}
		printf("tid %ld\n", thread_tid);
	} else {
		fire_all(NULL);
	}
	if (linger_ms > 0)
		usleep((useconds_t)(linger_ms * 1000));
	printf("fired %llu transferred %llu semaphore %u\n", fired, transferred, (unsigned)sem_seen);
	fflush(stdout);
	return 0;
}
