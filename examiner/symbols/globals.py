"""Types of the kernel globals Volatility 3's Linux plugins read, which BTF does not carry.

vmlinux BTF describes every type but types only per-CPU variables, so a symbol table built from
it alone knows where `init_task` is but not that it is a `struct task_struct`. The names below
are every global the Linux plugins and automagic of Volatility 3 (2.28) look up by name (found by
reading its framework and plugins); each is typed as the kernel declares it. A name the kernel
at hand does not have (older or newer kernels) is simply left out by the builder.

Spec grammar: `struct NAME` / `union NAME` / a base or typedef name; `*SPEC` a pointer;
`[N]SPEC` an array of N; `[]SPEC` an array sized by the gap to the next symbol (for arrays whose
length is a preprocessor constant BTF never sees); `function`; `anonymous struct{a,b}` the
unnamed struct whose members are exactly a and b.
"""

from __future__ import annotations

SEQ_OPS = ("raw", "udp", "arp", "unix", "udp6", "raw6", "tcp", "tcp4", "tcp6", "packet")

GLOBAL_TYPES: dict[str, str] = {
    "init_task": "struct task_struct",
    "init_mm": "struct mm_struct",
    "init_files": "struct files_struct",
    "init_pid_ns": "struct pid_namespace",
    "socket_file_ops": "struct file_operations",
    "sockfs_dentry_operations": "struct dentry_operations",
    "net_namespace_list": "struct list_head",
    "modules": "struct list_head",
    "module_kset": "*struct kset",
    "mod_tree": "struct mod_tree_root",
    "module_addr_min": "long unsigned int",
    "module_addr_max": "long unsigned int",
    "iomem_resource": "struct resource",
    # Without tk_core's type every process start time is "-": it is `static struct { seq; timekeeper; }`.
    "tk_core": "anonymous struct{seq,timekeeper}",
    "timekeeper": "struct timekeeper",
    "wall_to_monotonic": "struct timespec",
    "total_sleep_time": "struct timespec",
    "prb": "*struct printk_ringbuffer",
    "log_buf": "*char",
    "log_buf_len": "u32",
    "log_first_idx": "u32",
    "log_next_idx": "u32",
    "log_end": "unsigned int",
    "taint_flags": "[]struct taint_flag",
    "cap_last_cap": "int",
    "prog_idr": "struct idr",
    "bpf_kallsyms": "struct list_head",
    "bpf_tree": "struct latch_tree_root",
    "ftrace_ops_list": "*struct ftrace_ops",
    "ftrace_list_end": "struct ftrace_ops",
    "ftrace_ops_trampoline_list": "struct list_head",
    "ftrace_mod_maps": "struct list_head",
    "idt_table": "[256]gate_desc",
    "sys_call_table": "[]*function",
    "ia32_sys_call_table": "[]*function",
    "tty_drivers": "struct list_head",
    "keyboard_notifier_list": "struct atomic_notifier_head",
    "registered_fb": "[32]*struct fb_info",
    "num_registered_fb": "int",
    "node_data": "[]*struct pglist_data",
    "mem_section": "**struct mem_section",
    "mem_map": "*struct page",
    "vmemmap_base": "long unsigned int",
    "page_offset_base": "long unsigned int",
    "pid_hash": "*struct hlist_head",
    "pidhash_shift": "unsigned int",
    "nf_hooks": "[]struct list_head",
    "height_to_maxindex": "[]long unsigned int",
    "height_to_maxnodes": "[]long unsigned int",
    **{f"{family}_seq_ops": "struct seq_operations" for family in SEQ_OPS},
    **{f"{family}_seq_afinfo": "struct tcp_seq_afinfo" for family in ("tcp4", "tcp6")},
    **{f"{family}_seq_afinfo": "struct udp_seq_afinfo" for family in ("udp4", "udp6", "udplite4", "udplite6")},
}


def kallsyms_num_syms_type(symbol_names: set[str]) -> str:
    """`kallsyms_num_syms` became an unsigned int in the same change that added kallsyms_seqs_of_names (6.2)."""
    return "unsigned int" if "kallsyms_seqs_of_names" in symbol_names else "long unsigned int"
