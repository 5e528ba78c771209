// SPDX-License-Identifier: Apache-2.0
/*
 * migtrace-demo-target: a stand-in for a source QEMU. It carries QEMU's migration USDT probes
 * exactly as QEMU's dtrace backend declares them (provider "qemu", uint64_t operands, one
 * semaphore per probe in section .probes, as `dtrace -h` generates) and replays a recorded
 * migration read from standard input, at its recorded pace, so `migtrace demo` can attach live.
 *
 * Script lines (one event each, values decimal):
 *   W <microseconds>                 sleep
 *   T <a0> <a1> <a2> <a3> <a4>       migrate_transferred (5 args, era B)
 *   E <size> <pre> <post>            migrate_pending_estimate
 *   X <size> <pre> <post>            migrate_pending_exact
 *   S <state>                        migrate_set_state
 *   L <pending>                      migration_thread_low_pending
 * It starts reading only once it has printed "ready <pid>"; it exits at end of input.
 */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The semaphores `dtrace -h` would declare; tracers bump them through the kernel (uprobe ref_ctr). */
#define SEMAPHORE(name) \
	__extension__ unsigned short qemu_##name##_semaphore __attribute__((unused)) __attribute__((section(".probes")))
SEMAPHORE(migrate_transferred);
SEMAPHORE(migrate_pending_estimate);
SEMAPHORE(migrate_pending_exact);
SEMAPHORE(migrate_set_state);
SEMAPHORE(migration_thread_low_pending);

static void sleep_us(unsigned long long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };
	while (nanosleep(&ts, &ts) != 0)
		;
}

int main(void)
{
	char line[512];
	unsigned long long fired = 0;

	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		uint64_t a[5] = { 0 };
		char state[64];
		switch (line[0]) {
		case 'W':
			sleep_us(strtoull(line + 1, NULL, 10));
			break;
		case 'T':
			if (sscanf(line + 1, "%lu %lu %lu %lu %lu", &a[0], &a[1], &a[2], &a[3], &a[4]) == 5) {
				STAP_PROBE5(qemu, migrate_transferred, a[0], a[1], a[2], a[3], a[4]);
				fired++;
			}
			break;
		case 'E':
			if (sscanf(line + 1, "%lu %lu %lu", &a[0], &a[1], &a[2]) == 3) {
				STAP_PROBE3(qemu, migrate_pending_estimate, a[0], a[1], a[2]);
				fired++;
			}
			break;
		case 'X':
			if (sscanf(line + 1, "%lu %lu %lu", &a[0], &a[1], &a[2]) == 3) {
				STAP_PROBE3(qemu, migrate_pending_exact, a[0], a[1], a[2]);
				fired++;
			}
			break;
		case 'S':
			if (sscanf(line + 1, "%63s", state) == 1) {
				STAP_PROBE1(qemu, migrate_set_state, state);
				fired++;
			}
			break;
		case 'L':
			a[0] = strtoull(line + 1, NULL, 10);
			STAP_PROBE1(qemu, migration_thread_low_pending, a[0]);
			fired++;
			break;
		default:
			break;
		}
	}
	(void)fired;
	return 0;
}
