import os
import stat

from proxy.devbackend import DevBackend


def test_backend_answers_as_demo(direct) -> None:
    with direct.cursor() as cur:
        cur.execute("SELECT VERSION(), @@port")
        version, port = cur.fetchone()
    assert "MariaDB" in version
    assert port == direct.port


def test_state_is_private(backend: DevBackend) -> None:
    assert stat.S_IMODE(os.stat(backend.base).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(backend.service_cnf).st_mode) == 0o600


def test_plugin_dir_is_ours(backend: DevBackend, direct) -> None:
    with direct.cursor() as cur:
        cur.execute("SELECT @@plugin_dir")
        (plugin_dir,) = cur.fetchone()
    assert os.path.realpath(plugin_dir) == os.path.realpath(backend.plugin_dir)
