"""Kernel discovery parsers, on outputs captured from real instances (tests/events/kernel/)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from handlers.memory import kernel
from handlers.memory.kernel import DiscoveryUnreadable, KernelInfo

SAMPLES = Path(__file__).resolve().parent.parent / "events" / "kernel"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


@pytest.mark.parametrize(
    ("name", "distro"),
    [
        ("amzn2-x86_64.os-release", ("amzn", "2")),
        ("al2023.os-release", ("amzn", "2023")),
        ("ubuntu-22.04.os-release", ("ubuntu", "22.04")),
        ("ubuntu-24.04.os-release", ("ubuntu", "24.04")),
    ],
)
def test_os_release_of_each_supported_distribution_names_it(name: str, distro: tuple[str, str]) -> None:
    assert kernel.distro_of(kernel.parse_os_release(sample(name))) == distro


def test_os_release_values_are_unquoted_like_the_shell_does() -> None:
    fields = kernel.parse_os_release(sample("al2023.os-release"))
    assert fields["PRETTY_NAME"] == "Amazon Linux 2023.6.20241212"
    assert kernel.parse_os_release(sample("ubuntu-24.04.os-release"))["VERSION_CODENAME"] == "noble"


@pytest.mark.parametrize(
    "release",
    [
        "5.10.228-219.884.amzn2.x86_64",
        "4.14.355-275.570.amzn2.aarch64",
        "6.1.119-129.201.amzn2023.x86_64",
        "6.8.0-1018-aws",
        "5.15.0-1072-aws",
    ],
)
def test_real_uname_releases_are_accepted_verbatim(release: str) -> None:
    assert kernel.parse_uname_release(release + "\n") == release


@pytest.mark.parametrize("hostile", ["6.1.0; curl evil", "../../etc", "6.1 0", "$(id)", "", "a\nb"])
def test_release_strings_that_could_escape_a_key_or_a_shell_word_are_refused(hostile: str) -> None:
    with pytest.raises(DiscoveryUnreadable):
        kernel.parse_uname_release(hostile)


def test_machine_names_map_to_the_two_built_architectures() -> None:
    assert kernel.parse_uname_machine("x86_64\n") == "x86_64"
    assert kernel.parse_uname_machine("aarch64") == "aarch64"
    assert kernel.parse_uname_machine("arm64") == "aarch64"
    with pytest.raises(DiscoveryUnreadable):
        kernel.parse_uname_machine("i686")


def test_secure_boot_is_read_from_mokutil_and_from_the_efi_variable() -> None:
    assert kernel.parse_mokutil_sb_state("SecureBoot enabled\n") is True
    assert kernel.parse_mokutil_sb_state("SecureBoot disabled\nPlatform is in Setup Mode\n") is False
    assert kernel.parse_mokutil_sb_state("EFI variables are not supported on this system\n") is None
    assert kernel.parse_efivar_secure_boot(bytes([6, 0, 0, 0, 1])) is True
    assert kernel.parse_efivar_secure_boot(" 06 00 00 00 00\n") is False
    assert kernel.parse_efivar_secure_boot(b"") is None


def test_lockdown_reports_the_bracketed_mode_and_none_when_absent() -> None:
    assert kernel.parse_lockdown("none [integrity] confidentiality\n") == "integrity"
    assert kernel.parse_lockdown("[none] integrity confidentiality") == "none"
    assert kernel.parse_lockdown("") == "none"
    with pytest.raises(DiscoveryUnreadable):
        kernel.parse_lockdown("garbage")


def test_amazon_linux_2_on_x86_is_loadable_and_keyed_by_distro_release_and_arch() -> None:
    info = kernel.parse_discovery(sample("amzn2-x86_64.discovery.txt"))
    assert info == KernelInfo(
        "amzn", "2", "5.10.228-219.884.amzn2.x86_64", "x86_64", None, "none", 3964336 * 1024, python="3.7"
    )
    assert kernel.module_prefix(info) == "amzn-2/5.10.228-219.884.amzn2.x86_64/x86_64/"
    assert kernel.can_load_module(info)[0] is True


def test_al2023_on_graviton_reads_secure_boot_off_from_the_efi_variable() -> None:
    info = kernel.parse_discovery(sample("al2023-aarch64.discovery.txt"))
    assert (info.distro, info.distro_version, info.arch, info.secure_boot) == ("amzn", "2023", "aarch64", False)
    assert kernel.module_prefix(info) == "amzn-2023/6.1.119-129.201.amzn2023.aarch64/aarch64/"
    assert kernel.can_load_module(info)[0] is True


def test_ubuntu_with_secure_boot_is_refused_with_the_reason() -> None:
    info = kernel.parse_discovery(sample("ubuntu-24.04-x86_64-secureboot.discovery.txt"))
    assert (info.secure_boot, info.lockdown) == (True, "integrity")
    loadable, reason = kernel.can_load_module(info)
    assert loadable is False and "Secure Boot" in reason


def test_lockdown_alone_refuses_the_module() -> None:
    info = KernelInfo("ubuntu", "22.04", "5.15.0-1072-aws", "aarch64", False, "confidentiality")
    loadable, reason = kernel.can_load_module(info)
    assert loadable is False and "confidentiality" in reason


def test_ubuntu_22_04_on_arm_round_trips_through_the_state_machine_event() -> None:
    info = kernel.parse_discovery(sample("ubuntu-22.04-aarch64.discovery.txt"))
    assert KernelInfo.from_event(info.to_event()) == info
    assert kernel.is_buildable(info)[0] is True


def test_a_cut_short_discovery_output_is_refused() -> None:
    text = sample("amzn2-x86_64.discovery.txt").split("### irforensics:meminfo")[0]
    with pytest.raises(DiscoveryUnreadable, match="end"):
        kernel.parse_discovery(text)


def test_unsupported_distributions_cannot_be_built() -> None:
    # Debian 12 became buildable with issue 16: an unsupported distribution is now Fedora.
    info = KernelInfo("fedora", "40", "6.8.5-301.fc40.x86_64", "x86_64", False, "none")
    buildable, reason = kernel.is_buildable(info)
    assert buildable is False and "fedora 40" in reason


def _host(**changes: object) -> KernelInfo:
    base = KernelInfo("debian", "12", "6.1.0-57-amd64", "x86_64", False, "none", 256 << 20, True, "3.11", True)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_kcore_is_the_first_method_and_needs_no_module() -> None:
    method, reason = kernel.capture_method(_host())
    assert method == "kcore" and "no module" in reason
    # Lockdown in integrity mode (Secure Boot on Debian/Ubuntu) leaves kcore readable.
    assert kernel.capture_method(_host(secure_boot=True, lockdown="integrity"))[0] == "kcore"


def test_without_kcore_the_lime_module_is_the_fallback_and_secure_boot_leaves_neither() -> None:
    method, reason = kernel.capture_method(_host(kcore=False))
    assert method == "lime" and "/proc/kcore is not available" in reason
    method, reason = kernel.capture_method(_host(kcore=False, lockdown="confidentiality"))
    assert method == "none" and "lockdown (confidentiality)" in reason and "unsigned modules" in reason


def test_a_host_without_python3_is_not_captured_and_says_what_is_missing() -> None:
    for python in ("", "2.7", "3.6"):
        method, reason = kernel.capture_method(_host(python=python))
        assert method == "none" and "python3 3.7 or later" in reason


def test_discovery_reads_kcore_python_and_btf_sections() -> None:
    output = sample("amzn2-x86_64.discovery.txt").replace(
        "### irforensics:end", "### irforensics:kcore\n 7f 45 4c 46\n### irforensics:btf\npresent\n### irforensics:end"
    )
    info = kernel.parse_discovery(output)
    assert (info.kcore, info.python, info.btf) == (True, "3.7", True)
    assert kernel.KernelInfo.from_event(info.to_event()) == info
    assert kernel.parse_kcore(" 7f 45 4c 47\n") is False
