/* SPDX-License-Identifier: Apache-2.0 */
#include "CMigtraceBPF.h"

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

_Static_assert(sizeof(struct mt_event) == MT_EVENT_SIZE, "struct mt_event layout changed");

/* Links: every probe once per binary (`attach --all` adds binaries as they appear); a bound on runaway callers. */
#define MT_MAX_LINKS 4096

struct mt_session {
	struct bpf_object *obj;
	struct bpf_program *prog;  /* handle_probe */
	struct bpf_map *events;    /* ring buffer */
	struct bpf_map *drops;     /* per-CPU reserve failures */
	struct bpf_map *drops_by_tgid; /* the same by process */
	struct bpf_map *rodata;    /* .rodata (targ_tgid) */
	struct bpf_link **links;
	int nlinks, links_cap;
	struct ring_buffer *rb;
	mt_sample_fn sample;
	void *sample_ctx;
	const char *failed_op;
	bool loaded;
};

static bool verbose_log;

static int libbpf_print_fn(enum libbpf_print_level level, const char *format, va_list args)
{
	if (level == LIBBPF_DEBUG && !verbose_log)
		return 0;
	if (level == LIBBPF_INFO && !verbose_log)
		return 0;
	return vfprintf(stderr, format, args);
}

void mt_set_verbose(bool verbose)
{
	verbose_log = verbose;
	libbpf_set_print(libbpf_print_fn);
}

/* Records the failed operation and returns -err (err > 0). */
static int fail(mt_session *s, const char *op, int err)
{
	s->failed_op = op;
	if (err <= 0)
		err = EINVAL;
	return -err;
}

/* errno after a libbpf call that returned NULL (libbpf 1.x sets errno). */
static int null_errno(void)
{
	return errno ? errno : ENOENT;
}

mt_session *mt_session_new(void)
{
	static bool print_set;

	if (!print_set) {
		libbpf_set_print(libbpf_print_fn);
		print_set = true;
	}
	return calloc(1, sizeof(mt_session));
}

int mt_open(mt_session *s, const void *object, size_t size)
{
	struct bpf_map *map;

	if (s->obj)
		return fail(s, "bpf_object__open_mem", EALREADY);
	errno = 0;
	s->obj = bpf_object__open_mem(object, size, NULL);
	if (!s->obj)
		return fail(s, "bpf_object__open_mem", null_errno());

	s->prog = bpf_object__find_program_by_name(s->obj, "handle_probe");
	if (!s->prog)
		return fail(s, "bpf_object__find_program_by_name(handle_probe)", ENOENT);
	s->events = bpf_object__find_map_by_name(s->obj, "events");
	if (!s->events)
		return fail(s, "bpf_object__find_map_by_name(events)", ENOENT);
	s->drops = bpf_object__find_map_by_name(s->obj, "drops");
	if (!s->drops)
		return fail(s, "bpf_object__find_map_by_name(drops)", ENOENT);
	s->drops_by_tgid = bpf_object__find_map_by_name(s->obj, "drops_by_tgid");
	if (!s->drops_by_tgid)
		return fail(s, "bpf_object__find_map_by_name(drops_by_tgid)", ENOENT);

	/* internal maps are named "<obj prefix>.rodata" */
	bpf_object__for_each_map(map, s->obj) {
		const char *name = bpf_map__name(map);
		size_t len = strlen(name);

		if (len >= 7 && strcmp(name + len - 7, ".rodata") == 0)
			s->rodata = map;
	}
	if (!s->rodata)
		return fail(s, "bpf_object__find_map_by_name(.rodata)", ENOENT);
	return 0;
}

int mt_set_ringbuf_size(mt_session *s, uint32_t bytes)
{
	long page = sysconf(_SC_PAGESIZE);
	int err;

	if (!s->obj || s->loaded)
		return fail(s, "bpf_map__set_max_entries(events)", EINVAL);
	if (bytes == 0 || (bytes & (bytes - 1)) != 0 || (page > 0 && bytes % (uint32_t)page != 0))
		return fail(s, "bpf_map__set_max_entries(events)", EINVAL);
	err = bpf_map__set_max_entries(s->events, bytes);
	if (err)
		return fail(s, "bpf_map__set_max_entries(events)", -err);
	return 0;
}

/* Offset of a global variable in a DATASEC, from the object's BTF. */
static int datasec_var_offset(const struct btf *btf, const char *sec_name, const char *var_name)
{
	const struct btf_var_secinfo *vsi;
	const struct btf_type *sec;
	int id, i;

	id = btf__find_by_name_kind(btf, sec_name, BTF_KIND_DATASEC);
	if (id < 0)
		return -ENOENT;
	sec = btf__type_by_id(btf, id);
	vsi = btf_var_secinfos(sec);
	for (i = 0; i < btf_vlen(sec); i++, vsi++) {
		const struct btf_type *var = btf__type_by_id(btf, vsi->type);

		if (strcmp(btf__name_by_offset(btf, var->name_off), var_name) == 0)
			return (int)vsi->offset;
	}
	return -ENOENT;
}

/* Writes `size` bytes into the .rodata variable `name` (a `const volatile` of the BPF program); before load. */
static int set_rodata(mt_session *s, const char *name, const void *value, size_t size, const char *op)
{
	const struct btf *btf;
	size_t total = 0;
	char *data;
	int off;

	if (!s->obj || s->loaded)
		return fail(s, op, EINVAL);
	btf = bpf_object__btf(s->obj);
	if (!btf)
		return fail(s, "bpf_object__btf", ENOENT);
	off = datasec_var_offset(btf, ".rodata", name);
	if (off < 0)
		return fail(s, op, -off);
	data = bpf_map__initial_value(s->rodata, &total);
	if (!data || (size_t)off + size > total)
		return fail(s, "bpf_map__initial_value(.rodata)", ENOENT);
	memcpy(data + off, value, size);
	return 0;
}

int mt_set_target_tgid(mt_session *s, uint32_t tgid)
{
	return set_rodata(s, "targ_tgid", &tgid, sizeof(tgid), "btf__find_by_name_kind(.rodata:targ_tgid)");
}

int mt_set_wakeup_interval(mt_session *s, uint64_t ns)
{
	return set_rodata(s, "wakeup_interval_ns", &ns, sizeof(ns), "btf__find_by_name_kind(.rodata:wakeup_interval_ns)");
}

int mt_load(mt_session *s)
{
	int err;

	if (!s->obj)
		return fail(s, "bpf_object__load", EINVAL);
	err = bpf_object__load(s->obj);
	if (err)
		return fail(s, "bpf_object__load", -err);
	s->loaded = true;
	return 0;
}

int mt_attach_usdt(mt_session *s, int pid, const char *binary_path, const char *provider, const char *name,
		   uint64_t cookie)
{
	LIBBPF_OPTS(bpf_usdt_opts, opts, .usdt_cookie = cookie);
	struct bpf_link *link;

	if (!s->loaded)
		return fail(s, "bpf_program__attach_usdt", EINVAL);
	if (s->nlinks >= MT_MAX_LINKS)
		return fail(s, "bpf_program__attach_usdt", ENOSPC);
	if (s->nlinks == s->links_cap) {
		int cap = s->links_cap ? 2 * s->links_cap : 16;
		struct bpf_link **grown = realloc(s->links, (size_t)cap * sizeof(*grown));

		if (!grown)
			return fail(s, "realloc", ENOMEM);
		s->links = grown;
		s->links_cap = cap;
	}
	errno = 0;
	link = bpf_program__attach_usdt(s->prog, pid, binary_path, provider, name, &opts);
	if (!link)
		return fail(s, "bpf_program__attach_usdt", null_errno());
	s->links[s->nlinks++] = link;
	return 0;
}

int mt_attached_count(const mt_session *s)
{
	return s->nlinks;
}

static int sample_trampoline(void *ctx, void *data, size_t size)
{
	mt_session *s = ctx;

	return s->sample(s->sample_ctx, data, size);
}

int mt_ringbuf_open(mt_session *s, mt_sample_fn sample, void *ctx)
{
	if (!s->loaded)
		return fail(s, "ring_buffer__new", EINVAL);
	if (s->rb)
		return fail(s, "ring_buffer__new", EALREADY);
	s->sample = sample;
	s->sample_ctx = ctx;
	errno = 0;
	s->rb = ring_buffer__new(bpf_map__fd(s->events), sample_trampoline, s, NULL);
	if (!s->rb)
		return fail(s, "ring_buffer__new", null_errno());
	return 0;
}

int mt_ringbuf_poll(mt_session *s, int timeout_ms)
{
	int n;

	if (!s->rb)
		return fail(s, "ring_buffer__poll", EINVAL);
	n = ring_buffer__poll(s->rb, timeout_ms);
	if (n < 0 && n != -EINTR)
		return fail(s, "ring_buffer__poll", -n);
	if (n == 0) {
		/*
		 * Nothing woke us: records submitted with BPF_RB_NO_WAKEUP since the
		 * last wakeup (see bpf/migtrace.bpf.c) are read here, once per timeout.
		 */
		n = ring_buffer__consume(s->rb);
		if (n < 0)
			return fail(s, "ring_buffer__consume", -n);
	}
	return n;
}

int mt_ringbuf_consume(mt_session *s)
{
	int n;

	if (!s->rb)
		return fail(s, "ring_buffer__consume", EINVAL);
	n = ring_buffer__consume(s->rb);
	if (n < 0)
		return fail(s, "ring_buffer__consume", -n);
	return n;
}

int mt_read_drops(mt_session *s, uint64_t *out)
{
	uint32_t zero = 0;
	uint64_t *vals, sum = 0;
	int ncpu, i, err;

	if (!s->loaded)
		return fail(s, "bpf_map_lookup_elem(drops)", EINVAL);
	ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0)
		return fail(s, "libbpf_num_possible_cpus", ncpu < 0 ? -ncpu : EINVAL);
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return fail(s, "calloc", ENOMEM);
	err = bpf_map_lookup_elem(bpf_map__fd(s->drops), &zero, vals);
	if (err) {
		err = errno ? errno : EINVAL;
		free(vals);
		return fail(s, "bpf_map_lookup_elem(drops)", err);
	}
	for (i = 0; i < ncpu; i++)
		sum += vals[i];
	free(vals);
	*out = sum;
	return 0;
}

int mt_read_tgid_drops(mt_session *s, uint32_t tgid, uint64_t *out)
{
	uint64_t value = 0;

	if (!s->loaded)
		return fail(s, "bpf_map_lookup_elem(drops_by_tgid)", EINVAL);
	errno = 0;
	if (bpf_map_lookup_elem(bpf_map__fd(s->drops_by_tgid), &tgid, &value) != 0) {
		if (errno != ENOENT)
			return fail(s, "bpf_map_lookup_elem(drops_by_tgid)", errno ? errno : EINVAL);
		value = 0; /* no loss yet */
	}
	*out = value;
	return 0;
}

int mt_forget_tgid_drops(mt_session *s, uint32_t tgid)
{
	if (!s->loaded)
		return fail(s, "bpf_map_delete_elem(drops_by_tgid)", EINVAL);
	errno = 0;
	if (bpf_map_delete_elem(bpf_map__fd(s->drops_by_tgid), &tgid) != 0 && errno != ENOENT)
		return fail(s, "bpf_map_delete_elem(drops_by_tgid)", errno ? errno : EINVAL);
	return 0;
}

const char *mt_failed_op(const mt_session *s)
{
	return s->failed_op;
}

void mt_session_free(mt_session *s)
{
	int i;

	if (!s)
		return;
	ring_buffer__free(s->rb);
	for (i = s->nlinks - 1; i >= 0; i--)
		bpf_link__destroy(s->links[i]);
	free(s->links);
	bpf_object__close(s->obj);
	free(s);
}

int mt_capget_effective(uint64_t *out)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) != 0)
		return -errno;
	*out = (uint64_t)data[0].effective | ((uint64_t)data[1].effective << 32);
	return 0;
}

void mt_release_free_memory(void)
{
	malloc_trim(0);
}

size_t mt_event_size(void)
{
	return sizeof(struct mt_event);
}
