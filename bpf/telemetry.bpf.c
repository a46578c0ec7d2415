// SPDX-License-Identifier: GPL-2.0
// SemantOS eBPF telemetry (src/telemetry/ebpf): kernel-side aggregation only.
//
// Every program is a BTF-enabled raw tracepoint (tp_btf): it attaches by name
// through the kernel's BTF, so it needs neither kprobes, fentry trampolines nor
// a mounted tracefs (this project's reference kernel has none of the three).
// Programs only bump counters and log2 histograms in maps; userspace reads the
// maps once per snapshot, so the cost per event is a hash update, never a copy
// to userspace.
//
// Kernel structs are declared by hand with only the fields read, marked
// preserve_access_index: clang emits CO-RE relocations and the loader moves
// each offset to where the running kernel's BTF puts the field.

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define CORE __attribute__((preserve_access_index))

struct ns_common { unsigned int inum; } CORE;
struct net { struct ns_common ns; } CORE;
typedef struct { struct net *net; } CORE possible_net_t;
struct sock_common {
	unsigned short skc_family;
	volatile unsigned char skc_state;
	possible_net_t skc_net;
} CORE;
struct sock { struct sock_common __sk_common; } CORE;
struct net_device { possible_net_t nd_net; } CORE;
struct sk_buff { struct sock *sk; struct net_device *dev; } CORE;
struct task_struct { unsigned int __state; int pid; int tgid; } CORE;
struct gendisk { int major; int first_minor; } CORE;
struct request_queue { struct gendisk *disk; } CORE;
struct request { struct request_queue *q; } CORE;

// Keys shared with userspace (src/telemetry/ebpf/maps.rs): same layout, no padding.
struct drop_key { __u32 netns; __u32 reason; };
struct state_key { __u32 netns; __u16 from; __u16 to; };
struct hist_key { __u32 id; __u32 slot; };

#define HASH(name, K, V, n) \
	struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, n); __type(key, K); __type(value, V); } name SEC(".maps")
#define LRU(name, K, V, n) \
	struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, n); __type(key, K); __type(value, V); } name SEC(".maps")

HASH(drops, struct drop_key, __u64, 4096);        // (netns, skb_drop_reason) -> packets
HASH(retransmits, struct drop_key, __u64, 1024);  // (netns, tcp state) -> segments
HASH(transitions, struct state_key, __u64, 4096); // (netns, old, new) -> transitions
HASH(runq_hist, struct hist_key, __u64, 256);     // (0, log2 us) -> wake-ups, every task
HASH(runq_watch, __u32, __u32, 64);               // tid -> 1: tids with their own histogram
HASH(runq_tid_hist, struct hist_key, __u64, 4096);// (tid, log2 us) -> wake-ups of watched tids
HASH(bio_hist, struct hist_key, __u64, 4096);     // (dev_t, log2 us) -> completed requests
LRU(runq_start, __u32, __u64, 16384);             // tid -> when it became runnable
LRU(bio_start, __u64, __u64, 16384);              // request address -> when it was issued

static __always_inline void bump(void *map, const void *key)
{
	__u64 one = 1, *v = bpf_map_lookup_elem(map, key);
	if (v) {
		__sync_fetch_and_add(v, 1);
		return;
	}
	if (bpf_map_update_elem(map, key, &one, BPF_NOEXIST) != 0) {
		v = bpf_map_lookup_elem(map, key); // another CPU created it first
		if (v)
			__sync_fetch_and_add(v, 1);
	}
}

// floor(log2(v)) + 1, 0 for 0: slot s holds [2^(s-1), 2^s) microseconds.
static __always_inline __u32 log2_slot(__u64 v)
{
	__u32 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return v ? r + 1 : 0;
}

static __always_inline __u32 sock_netns(const struct sock *sk)
{
	struct net *net = sk->__sk_common.skc_net.net;
	return net ? net->ns.inum : 0;
}

// Copies a kernel field through bpf_probe_read_kernel. Needed where the
// verifier cannot type a pointer: sk_buff's sk and dev share unions with
// integers (ip_defrag_offset, dev_scratch), so a direct load reads a scalar.
#define READ(dst, src) bpf_probe_read_kernel(&(dst), sizeof(dst), &(src))

static __always_inline __u32 netns_of_net(struct net *net)
{
	__u32 inum = 0;
	if (net)
		READ(inum, net->ns.inum);
	return inum;
}

// skb:kfree_skb(skb, location, reason, rx_sk)
SEC("tp_btf/kfree_skb")
int kfree_skb(__u64 *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)ctx[0];
	__u32 reason = (__u32)ctx[2];
	struct sock *sk = (struct sock *)ctx[3];
	struct net_device *dev = 0;
	struct net *net = 0;
	struct drop_key key = { .netns = 0, .reason = reason };

	if (reason <= 1) // NOT_DROPPED_YET, CONSUMED: not drops
		return 0;
	// The receiving socket when there is one (rx_sk), else the skb's socket, else its device.
	if (!sk)
		READ(sk, skb->sk);
	if (sk) {
		READ(net, sk->__sk_common.skc_net.net);
	} else {
		READ(dev, skb->dev);
		if (dev)
			READ(net, dev->nd_net.net);
	}
	key.netns = netns_of_net(net);
	bump(&drops, &key);
	return 0;
}

// tcp:tcp_retransmit_skb(sk, skb, err)
SEC("tp_btf/tcp_retransmit_skb")
int tcp_retransmit_skb(__u64 *ctx)
{
	struct sock *sk = (struct sock *)ctx[0];
	struct drop_key key = { .netns = sock_netns(sk), .reason = sk->__sk_common.skc_state };
	bump(&retransmits, &key);
	return 0;
}

// sock:inet_sock_set_state(sk, oldstate, newstate)
SEC("tp_btf/inet_sock_set_state")
int inet_sock_set_state(__u64 *ctx)
{
	struct sock *sk = (struct sock *)ctx[0];
	struct state_key key = { .netns = sock_netns(sk), .from = (__u16)ctx[1], .to = (__u16)ctx[2] };
	bump(&transitions, &key);
	return 0;
}

static __always_inline void runq_enqueued(struct task_struct *p)
{
	__u32 tid = p->pid;
	__u64 now = bpf_ktime_get_ns();
	if (tid)
		bpf_map_update_elem(&runq_start, &tid, &now, BPF_ANY);
}

// sched:sched_wakeup(p) and sched:sched_wakeup_new(p)
SEC("tp_btf/sched_wakeup")
int sched_wakeup(__u64 *ctx)
{
	runq_enqueued((struct task_struct *)ctx[0]);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int sched_wakeup_new(__u64 *ctx)
{
	runq_enqueued((struct task_struct *)ctx[0]);
	return 0;
}

// sched:sched_switch(preempt, prev, next, prev_state): a preempted prev is
// runnable again from now; next stops waiting now.
SEC("tp_btf/sched_switch")
int sched_switch(__u64 *ctx)
{
	struct task_struct *prev = (struct task_struct *)ctx[1];
	struct task_struct *next = (struct task_struct *)ctx[2];
	__u32 prev_state = (__u32)ctx[3];
	__u32 tid = next->pid;
	__u64 *start, now = bpf_ktime_get_ns();

	if (prev_state == 0) // TASK_RUNNING: preempted, still wants the CPU
		runq_enqueued(prev);
	if (!tid)
		return 0;
	start = bpf_map_lookup_elem(&runq_start, &tid);
	if (!start)
		return 0;
	__u64 delta = now > *start ? (now - *start) / 1000 : 0;
	bpf_map_delete_elem(&runq_start, &tid);
	struct hist_key key = { .id = 0, .slot = log2_slot(delta) };
	bump(&runq_hist, &key);
	if (bpf_map_lookup_elem(&runq_watch, &tid)) {
		key.id = tid;
		bump(&runq_tid_hist, &key);
	}
	return 0;
}

// block:block_rq_issue(rq) and block:block_rq_complete(rq, error, nr_bytes)
SEC("tp_btf/block_rq_issue")
int block_rq_issue(__u64 *ctx)
{
	__u64 rq = ctx[0], now = bpf_ktime_get_ns();
	bpf_map_update_elem(&bio_start, &rq, &now, BPF_ANY);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int block_rq_complete(__u64 *ctx)
{
	struct request *rq = (struct request *)ctx[0];
	__u64 addr = ctx[0], *start = bpf_map_lookup_elem(&bio_start, &addr), now = bpf_ktime_get_ns();
	if (!start)
		return 0;
	__u64 delta = now > *start ? (now - *start) / 1000 : 0;
	bpf_map_delete_elem(&bio_start, &addr);
	struct gendisk *disk = rq->q->disk;
	if (!disk)
		return 0;
	// dev_t as the kernel encodes it (MKDEV): major << 20 | minor.
	struct hist_key key = { .id = ((__u32)disk->major << 20) | (__u32)disk->first_minor, .slot = log2_slot(delta) };
	bump(&bio_hist, &key);
	return 0;
}
