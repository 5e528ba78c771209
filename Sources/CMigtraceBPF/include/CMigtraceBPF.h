/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CMigtraceBPF: the only code that calls libbpf.
 *
 * Swift cannot use libbpf's LIBBPF_OPTS macro or its skeleton inline
 * functions, and should not have to know libbpf's error conventions, so
 * this shim exposes a small `mt_` API over an opaque session:
 *
 *   mt_session_new -> mt_open -> mt_set_ringbuf_size / mt_set_target_tgid / mt_set_wakeup_interval
 *     -> mt_load -> mt_attach_usdt (per probe and binary) -> mt_ringbuf_open
 *     -> mt_ringbuf_poll ... -> mt_read_drops -> mt_session_free
 *
 * Every int-returning function returns 0 (or a count) on success and a
 * negative errno on failure; mt_failed_op() names the libbpf call that
 * failed last. mt_session_free is the one cleanup path for everything.
 */
#ifndef CMIGTRACEBPF_H
#define CMIGTRACEBPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migtrace_event.h"

#pragma clang assume_nonnull begin

/* An open BPF object with its links, ring buffer and counters. */
typedef struct mt_session mt_session;

/* Called for each ring-buffer record; `data` is valid only during the call. Non-zero stops the poll. */
typedef int (*mt_sample_fn)(void *_Nullable ctx, const void *data, size_t size);

/* Route libbpf's log: debug lines are dropped unless verbose; warnings go to stderr. */
void mt_set_verbose(bool verbose);

/* A new, empty session, or NULL when out of memory. */
mt_session *_Nullable mt_session_new(void);

/* Opens the BPF object from memory (bpf_object__open_mem); the bytes are copied by libbpf. */
int mt_open(mt_session *session, const void *object, size_t size);

/* Sets the ring-buffer size in bytes (a power of two, multiple of the page size); before mt_load. */
int mt_set_ringbuf_size(mt_session *session, uint32_t bytes);

/* Sets the kernel-side tgid filter (0 = every process); before mt_load. */
int mt_set_target_tgid(mt_session *session, uint32_t tgid);

/* Sets how long after a wakeup the BPF program waits before it wakes the reader again (ns); before mt_load. */
int mt_set_wakeup_interval(mt_session *session, uint64_t ns);

/* Loads and verifies the object. */
int mt_load(mt_session *session);

/*
 * Attaches the probe program to USDT provider:name in binary_path for pid (-1: every process)
 * with `cookie` as the probe id. Returns 0, or a negative errno (-ENOENT: no such probe).
 */
int mt_attach_usdt(mt_session *session, int pid, const char *binary_path, const char *provider,
		   const char *name, uint64_t cookie);

/* Number of links attached so far. */
int mt_attached_count(const mt_session *session);

/* Creates the ring-buffer reader with a sample callback (ctx is passed back verbatim). */
int mt_ringbuf_open(mt_session *session, mt_sample_fn sample, void *_Nullable ctx);

/*
 * Polls the ring buffer, and when the wait timed out without a wakeup consumes what is there anyway
 * (the BPF program submits most records without a wakeup); returns records consumed or a negative
 * errno (-EINTR is harmless).
 */
int mt_ringbuf_poll(mt_session *session, int timeout_ms);

/* Consumes whatever is available without waiting; returns records consumed or a negative errno. */
int mt_ringbuf_consume(mt_session *session);

/* Reads the per-CPU reserve-failure counter and stores its sum in *out. */
int mt_read_drops(mt_session *session, uint64_t *out);

/* Reads the ring-buffer losses of one process (0 when it lost none). */
int mt_read_tgid_drops(mt_session *session, uint32_t tgid, uint64_t *out);

/* Forgets the losses of a process that has ended (its pid may be reused); they stay in the total. */
int mt_forget_tgid_drops(mt_session *session, uint32_t tgid);

/* The libbpf operation that failed last (static string), or NULL if none failed. */
const char *_Nullable mt_failed_op(const mt_session *session);

/* Frees links, ring buffer, object and the session itself. Accepts NULL. */
void mt_session_free(mt_session *_Nullable session);

/* Effective capability bits (capget(2), version 3) of this process; 0 or a negative errno. */
int mt_capget_effective(uint64_t *out);

/* Gives the memory malloc holds free back to the system (glibc's malloc_trim, which <malloc.h> alone declares). */
void mt_release_free_memory(void);

/* The size of struct mt_event, for layout tests. */
size_t mt_event_size(void);

#pragma clang assume_nonnull end

#endif /* CMIGTRACEBPF_H */
