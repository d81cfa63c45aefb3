"""A throwaway PostgreSQL server for a test: initdb in a temp folder, started on a free local port as an unprivileged
user (PostgreSQL refuses to run as root), one database created, stopped and removed after."""
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile


def pg_binary(name: str) -> str:
    """A PostgreSQL server binary: Debian's /usr/lib/postgresql/VERSION/bin (newest first), else on PATH. Missing
    is a failure, not a skip: .ci/run installs Debian's postgresql package."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]), reverse=True):
        if os.access(os.path.join(folder, name), os.X_OK):
            return os.path.join(folder, name)
    found = shutil.which(name)
    assert found, f"PostgreSQL's {name} is not installed (apt-get install postgresql; .ci/run does it)"
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server(db: str = "nas"):
    """Yields the URL of database `db` on a fresh server (user `nas`, trust auth on 127.0.0.1)."""
    import psycopg

    initdb, pg_ctl = pg_binary("initdb"), pg_binary("pg_ctl")
    user = None
    if os.geteuid() == 0:  # run the server as postgres (or nobody): it will not run as root
        user = next(u for u in ("postgres", "nobody") if _exists(u))
    folder = tempfile.mkdtemp(prefix="nas-pg-")  # not under pytest's tmp: root-only folders above it
    data, log = os.path.join(folder, "data"), os.path.join(folder, "server.log")
    if user:
        os.chown(folder, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
    port = free_port()

    def run(*argv):
        subprocess.run(argv, user=user, check=True, capture_output=True, text=True, cwd=folder,
                       env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"})

    try:
        run(initdb, "-D", data, "-U", "nas", "--auth=trust", "-E", "UTF8", "--locale=C")
        run(pg_ctl, "-D", data, "-l", log, "-w", "-t", "60", "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    except subprocess.CalledProcessError as e:
        server_log = open(log).read() if os.path.exists(log) else ""
        raise AssertionError(f"PostgreSQL did not start: {e.stderr or e.stdout}\n{server_log}") from None
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="nas", dbname="postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {db}")
        yield f"postgresql://nas@127.0.0.1:{port}/{db}"
    finally:
        run(pg_ctl, "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False
