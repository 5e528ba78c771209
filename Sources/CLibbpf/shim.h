/* SPDX-License-Identifier: Apache-2.0 */
/* libbpf through pkg-config (`pkg-config --cflags --libs libbpf`); only CMigtraceBPF uses it. */
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
