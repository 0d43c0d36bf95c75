"""insmod's parameters for the LimeFactory's module, from the module's own .modinfo (no modinfo on the host)."""

from __future__ import annotations

from handlers.memory import acquire

MODINFO = (
    b"\x7fELF...\0license=GPL\0parm=timeout:Timeout in ms\0parmtype=timeout:long\0parmtype=path:charp\0"
    b"parmtype=format:charp\0parmtype=localhostonly:int\0vermagic=6.1.0-57-amd64 SMP preempt mod_unload\0"
)


def test_a_module_with_lime_s_timeout_is_told_never_to_skip_a_slow_range() -> None:
    assert acquire.module_parameters(MODINFO) == {"timeout", "path", "format", "localhostonly"}
    assert acquire.lime_arguments(MODINFO, 4444) == ["path=tcp:4444", "localhostonly=1", "format=lime", "timeout=0"]


def test_a_module_without_the_parameter_is_not_given_it() -> None:
    # insmod refuses a parameter the module does not declare; such a LiME has no timeout to turn off.
    older = MODINFO.replace(b"parmtype=timeout:long\0", b"")
    assert "timeout" not in acquire.module_parameters(older)
    assert acquire.lime_arguments(older, 4444) == ["path=tcp:4444", "localhostonly=1", "format=lime"]
