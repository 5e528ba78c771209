// SPDX-License-Identifier: Apache-2.0
/*
 * latency-reader: reads one CLOCK_MONOTONIC timestamp (ns) per line on stdin, as printed by
 * bpftrace's `printf("%llu\n", nsecs)` at probe fire, and takes the time each line arrives
 * (CLOCK_MONOTONIC, once per read(2): lines read together arrived together). At EOF it prints "latency_events=N p50_ns=.. p99_ns=.. max_ns=..", the same
 * line `migtrace attach` writes to MIGTRACE_LATENCY_REPORT. Lines that are not numbers are skipped.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t *v;
static size_t n, cap;

static void add(uint64_t fired, uint64_t now)
{
	if (n == cap) {
		cap = cap ? cap * 2 : 1 << 16;
		v = realloc(v, cap * sizeof(*v));
		if (!v)
			exit(1);
	}
	v[n++] = now > fired ? now - fired : 0;
}

int main(void)
{
	static char buf[1 << 16];
	uint64_t val = 0;
	int digits = 0, junk = 0;
	ssize_t got;

	/* every line of one read() arrived at the time that read() returned */
	while ((got = read(0, buf, sizeof buf)) > 0) {
		struct timespec ts;
		uint64_t now;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		for (ssize_t i = 0; i < got; i++) {
			char c = buf[i];

			if (c == '\n') {
				if (digits && !junk)
					add(val, now);
				val = 0;
				digits = junk = 0;
			} else if (c >= '0' && c <= '9') {
				val = val * 10 + (uint64_t)(c - '0');
				digits++;
			} else {
				junk = 1;
			}
		}
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp);
	printf("latency_events=%zu p50_ns=%llu p99_ns=%llu max_ns=%llu\n", n,
	       n ? (unsigned long long)v[(n - 1) / 2] : 0ull, n ? (unsigned long long)v[(n * 99 + 99) / 100 - 1] : 0ull,
	       n ? (unsigned long long)v[n - 1] : 0ull);
	return 0;
}
