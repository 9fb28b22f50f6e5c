"""The `tessera` command: plugins list (text and JSON), version, help, exit
codes, and plugin discovery through the environment.

Run by CTest with TESSERA_CLI (path of the binary) and TESSERA_FAULT_DIR.
"""
import json
import os
import re
import subprocess

import pytest

CLI = os.environ["TESSERA_CLI"]
FAULT_DIR = os.environ["TESSERA_FAULT_DIR"]
HAS_CUDA_PLUGIN = os.environ.get("TESSERA_HAS_CUDA_PLUGIN") == "1"


def run(*args, env_extra=None, env_drop=()):
    env = {k: v for k, v in os.environ.items() if k not in env_drop and not k.startswith("TESSERA_PLUGIN")}
    env.pop("TESSERA_ADD_PLUGIN_PATH", None)
    env.update(env_extra or {})
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=60)


def plugins_json(*extra, **kw):
    r = run("plugins", "list", "--json", *extra, **kw)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def by_file(data):
    return {os.path.basename(p["path"]): p for p in data["plugins"]}


def test_default_listing_has_cpu_with_one_device():
    data = plugins_json()
    cpu = [p for p in data["plugins"] if p["name"] == "cpu"]
    assert len(cpu) == 1 and cpu[0]["state"] == "loaded" and cpu[0]["device_count"] == 1
    devices = [d for d in data["devices"] if d["plugin"] == "cpu"]
    assert len(devices) == 1
    assert devices[0]["compute_units"] == os.cpu_count()
    assert devices[0]["memory_bytes"] > 0
    assert devices[0]["architecture"].startswith("x86-64")


def test_cuda_plugin_reports_no_driver_here():
    if not HAS_CUDA_PLUGIN:
        pytest.skip("the CUDA plugin was not built (no cuda.h on this machine)")
    cuda = [p for p in plugins_json()["plugins"] if p["name"] == "cuda"]
    assert len(cuda) == 1
    assert cuda[0]["state"] == "loaded"
    if cuda[0]["device_count"] == 0:
        assert cuda[0]["device_status"] == "no device"
        assert "no CUDA driver" in cuda[0]["reason"] or "no CUDA device" in cuda[0]["reason"]


def test_text_table_shows_states_and_reasons():
    r = run("plugins", "list", "--plugin-path", FAULT_DIR)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert re.search(r"^cpu\s+loaded\s+", out, re.M)
    assert "required entry 'device_count' is NULL" in out
    assert "ELF for aarch64, this host is x86-64" in out
    assert re.search(r"^DEVICE\s+PLUGIN\s+ARCH", out, re.M)


EXPECTED_FAULTS = {
    "libtessera-backend-fault-wrong-major.so": ("incompatible version", "plugin implements ABI 99."),
    "libtessera-backend-fault-ignores-range.so": ("incompatible version", "plugin answered ABI 7.0"),
    "libtessera-backend-fault-newer-minor.so": ("loaded", ""),
    "libtessera-backend-fault-older-minor.so": ("loaded", ""),
    "libtessera-backend-fault-missing-entry.so": ("missing entry point", "no entry point tessera_backend_get_api"),
    "libtessera-backend-fault-entry-error.so": ("entry failed", "simulated failure: libvendor.so.3 not found"),
    "libtessera-backend-fault-null-slot.so": ("invalid function table", "required entry 'device_count' is NULL"),
    "libtessera-backend-fault-dup-a.so": ("loaded", ""),
    "libtessera-backend-fault-dup-b.so": ("duplicate name", "another plugin already provides 'fault-dup'"),
    "libtessera-backend-fault-garbage.so": ("not a plugin", "not an ELF file"),
    "libtessera-backend-fault-wrong-arch.so": ("not a plugin", "ELF for aarch64"),
    "libtessera-backend-fault-unreadable.so": ("unreadable", "No such file or directory"),
    "libtessera-backend-fault-not-a-file.so": ("unreadable", "not a regular file"),
}


@pytest.mark.parametrize("file", sorted(EXPECTED_FAULTS))
def test_each_fault_plugin_shows_its_reason(file):
    plugins = by_file(plugins_json("--plugin-path", FAULT_DIR))
    assert file in plugins, sorted(plugins)
    state, reason = EXPECTED_FAULTS[file]
    assert plugins[file]["state"] == state, plugins[file]
    assert reason in plugins[file]["reason"], plugins[file]


def test_good_plugins_work_beside_faults():
    data = plugins_json("--plugin-path", FAULT_DIR)
    assert any(d["plugin"] == "cpu" for d in data["devices"])
    assert by_file(data)["libtessera-backend-cpu.so"]["state"] == "loaded"


def test_plugin_path_env_replaces_defaults():
    data = plugins_json(env_extra={"TESSERA_PLUGIN_PATH": FAULT_DIR})
    names = {p["name"] for p in data["plugins"]}
    assert "cpu" not in names and "fault-dup" in names


def test_add_plugin_path_env_keeps_defaults():
    data = plugins_json(env_extra={"TESSERA_ADD_PLUGIN_PATH": FAULT_DIR})
    names = [p["name"] for p in data["plugins"]]
    assert "cpu" in names and "fault-dup" in names
    # The added directory is searched first.
    assert names.index("fault-dup") < names.index("cpu")


def test_no_load_lists_from_manifests():
    data = plugins_json("--no-load")
    cpu = [p for p in data["plugins"] if p["name"] == "cpu"]
    assert cpu and cpu[0]["state"] == "not loaded" and cpu[0]["has_manifest"]
    assert data["devices"] == []


def test_version():
    r = run("version", "--json")
    assert r.returncode == 0
    v = json.loads(r.stdout)
    assert re.fullmatch(r"\d+\.\d+\.\d+", v["version"]) and re.fullmatch(r"\d+\.\d+", v["abi_version"])
    assert run("version").stdout.startswith("tessera ")


def subcommand_paths():
    """Every command and nested subcommand, discovered from --help output."""
    paths, queue = [], [[]]
    while queue:
        path = queue.pop()
        r = run(*path, "--help")
        assert r.returncode == 0, (path, r.stderr)
        paths.append(path)
        m = re.search(r"^Subcommands:\n((?:  .*\n?)+)", r.stdout, re.M)
        if m:
            for line in m.group(1).splitlines():
                queue.append(path + [line.split()[0]])
    return paths


def test_help_on_every_command():
    paths = subcommand_paths()
    assert ["plugins", "list"] in paths and ["version"] in paths
    assert "Exit codes" in run("--help").stdout


def test_usage_errors_exit_2():
    assert run("no-such-command").returncode == 2
    assert run("plugins", "list", "--no-such-flag").returncode == 2
    assert run().returncode == 2
