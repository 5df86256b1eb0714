"""The targets story over HTTP: new target kinds, `cuda=auto`, several targets, unknown names.

A real server on the fixture index. The fixture's PyTorch index has the cpu, cu118, cu121 and
cu124 variants, so `cuda=auto` for a driver that runs cu129 … cu121 passes over the variants
the index does not have and takes cu124; a lock without a variant that takes torch from the
fixture PyPI pulls its CUDA 12 runtime and says so everywhere.
"""

from __future__ import annotations

import re
from typing import Any

from tests.support import LockdServer, assert_problem, row_counts, wait_until

TEXT = {"content-type": "text/plain"}
LINUX = {"platform": "linux_x86_64", "python": "3.11"}


def _unchanged(before: dict[str, int], after: dict[str, int]) -> None:
    # Refused requests write nothing; resolutions' own bookkeeping tables do not count.
    bookkeeping = {"resolution_leases", "dist_metadata", "file_hashes"}
    changed = {name for name in before if before[name] != after[name] and name not in bookkeeping}
    assert not changed, changed


def test_a_misspelled_parameter_is_refused_naming_the_nearest_one(lockd_server: LockdServer) -> None:
    before = row_counts(lockd_server.database_url)
    with lockd_server.client() as client:
        raw = client.post("/lock", params={**LINUX, "cdua": "cu124"}, content=b"torch==2.5.1\n", headers=TEXT)
        problem = assert_problem(raw, 422, "invalid-request")
        assert problem["detail"] == "unknown query parameter 'cdua': did you mean 'cuda'?"
        assert problem["context"]["did_you_mean"] == "cuda" and "glibc" in problem["context"]["accepted"]
        body = {"requirements": "torch==2.5.1", "target": {**LINUX, "cdua": "cu124"}}
        problem = assert_problem(client.post("/v1/locks", json=body), 422, "invalid-request")
        assert problem["detail"] == "unknown field 'target.cdua': did you mean 'target.cuda'?"
        problem = assert_problem(client.get("/v1/locks", params={"platfrom": "x"}), 422, "invalid-request")
        assert problem["context"]["did_you_mean"] == "platform"
        for params, field in (
            ({**LINUX, "platform": "macos_arm64", "musl": "1.2"}, "musl"),
            ({**LINUX, "python": "3.12t"}, "python"),
            ({**LINUX, "platform": "riscv64-unknown-linux"}, "platform"),
            ({**LINUX, "cuda": "cu130", "driver": "550.54"}, "driver"),
            ({**LINUX, "cuda": "auto", "driver": "440.33"}, "driver"),
            ({**LINUX, "cuda": "auto"}, "driver"),
        ):
            response = client.post("/lock", params=params, content=b"torch==2.5.1\n", headers=TEXT)
            problem = assert_problem(response, 422, "invalid-target")
            assert problem["context"]["field"] == field, problem
            assert problem.get("hint") or problem["context"].get("accepted"), problem
    _unchanged(before, row_counts(lockd_server.database_url))


def test_a_lock_without_a_variant_says_which_runtime_it_pulls(lockd_server: LockdServer) -> None:
    with lockd_server.client() as client:
        raw = client.post("/lock", params=LINUX, content=b"torch==2.5.1\n", headers=TEXT)
        assert raw.status_code in (200, 201), raw.text
        assert raw.headers["Lock-Accelerator"] == 'none; runtime="CUDA 12 runtime from PyPI"'
        assert "# accelerator: none · CUDA 12 runtime from PyPI" in raw.text
        lock = client.get(f"/v1/blobs/{raw.headers['Lock-Digest']}/lock.json").json()
        assert lock["accelerator_runtime"] == "CUDA 12 runtime from PyPI"
        info = client.post("/v1/locks", json={"requirements": "torch==2.5.1", "target": LINUX}).json()
        assert info["accelerator"] == {
            "variant": None,
            "chosen_by": None,
            "driver": None,
            "reason": None,
            "runtime": "CUDA 12 runtime from PyPI",
        }
        cpu = client.post("/lock", params={**LINUX, "cuda": "cpu"}, content=b"torch==2.5.1\n", headers=TEXT)
        assert cpu.headers["Lock-Accelerator"] == "cpu" and "# accelerator:" not in cpu.text


def test_cuda_auto_takes_the_newest_variant_the_index_has_for_the_driver(lockd_server: LockdServer) -> None:
    params = {**LINUX, "cuda": "auto", "driver": "535.104.05"}
    with lockd_server.client() as client:
        raw = client.post("/lock", params=params, content=b"torch==2.5.1\n", headers=TEXT)
        assert raw.status_code in (200, 201), raw.text
        assert raw.headers["Lock-Accelerator"] == 'cu124; auto; driver="535.104.5"'
        assert "torch==2.5.1+cu124" in raw.text
        assert "# accelerator: cu124 (CUDA 12.4), chosen by cuda=auto" in raw.text
        body = {"requirements": "torch==2.5.1", "target": {**LINUX, "cuda": "auto", "driver": "535.104.05"}}
        info = client.post("/v1/locks", json=body).json()
        assert info["accelerator"]["variant"] == "cu124" and info["accelerator"]["chosen_by"] == "auto"
        assert "cu129: no torch==2.5.1 build for linux_x86_64" in info["accelerator"]["reason"]
        assert info["target"] == {
            "platform": "linux_x86_64",
            "python": "3.11.0",
            "cuda": "cu124",
            "driver": "535.104.5",
        }
        assert info["input_digest"] == raw.headers["Input-Digest"]
        # torch 2.5.1 has no cu118-or-newer build the driver runs on the index for Python 3.14
        late = client.post(
            "/lock", params={**params, "python": "3.14"}, content=b"torch==2.5.1\n", headers=TEXT
        )
        problem = assert_problem(late, 422, "no-accelerator-variant")
        assert problem["context"]["driver_allows"][0] == "cu129"


def _bundle(client: Any, targets: list[dict[str, str]], requirements: str) -> tuple[int, dict[str, Any]]:
    response = client.post("/v1/locks", json={"requirements": requirements, "targets": targets})
    assert response.status_code in (200, 201), response.text
    return response.status_code, response.json()


def test_several_targets_share_versions_where_they_can(
    lockd_server: LockdServer, unique_requirements: str
) -> None:
    requirements = unique_requirements + "lockd-fx-pyreq\n"
    new, old = {"platform": "linux_x86_64", "python": "3.12"}, {"platform": "linux_aarch64", "python": "3.11"}
    with lockd_server.client() as client:
        status, bundle = _bundle(client, [new, old], requirements)
        assert status == 201
        first, second = bundle["locks"]
        # the first target is locked exactly as a request for it alone
        alone = client.post("/v1/locks", json={"requirements": requirements, "target": new})
        assert alone.status_code == 200 and alone.json()["input_digest"] == first["input_digest"]
        (difference,) = bundle["differences"]
        assert difference["name"] == "lockd-fx-pyreq"
        assert list(difference["versions"].values()) == ["2.0", "1.0"]
        assert "requires Python" in difference["reason"], difference
        # each lock is stored and served like any other
        for member in bundle["locks"]:
            assert client.get(member["links"]["self"]).json()["lock_digest"] == member["lock_digest"]
            assert client.get(member["links"]["files"]["requirements.txt"]).status_code == 200
        stored = client.get(f"/v1/blobs/{second['lock_digest']}/lock.json").json()
        assert "lockd-fx-pyreq" in {p["name"] for p in stored["packages"]}

        # In the other order the first target's older pin is kept where a newer one would fit.
        _, reverse = _bundle(client, [old, new], requirements)
        assert reverse["differences"] == []
        newer = reverse["locks"][1]
        pins = client.get(newer["links"]["files"]["requirements.txt"]).text
        assert "lockd-fx-pyreq==1.0" in pins
        # … which is why that target's input records the preference: alone it would take 2.0
        assert newer["input_digest"] != first["input_digest"]
        again = client.get(f"/v1/locks/{newer['input_digest']}").json()
        assert again["lock_digest"] == newer["lock_digest"]

        # Asked again, the whole bundle is answered from the store.
        status, same = _bundle(client, [old, new], requirements)
        assert status == 200 and [m["lock_digest"] for m in same["locks"]] == [
            m["lock_digest"] for m in reverse["locks"]
        ]


def test_repeated_target_parameters_answer_a_bundle(
    lockd_server: LockdServer, unique_requirements: str
) -> None:
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("python", "3.11"),
        ("platform", "linux_x86_64"),
        ("platform", "windows_amd64"),
    ]
    with lockd_server.client() as client:
        response = client.post("/lock", params=params, content=unique_requirements.encode(), headers=TEXT)
        assert response.status_code == 201, response.text
        bundle = response.json()
        assert [m["target"]["platform"] for m in bundle["locks"]] == ["linux_x86_64", "windows_amd64"]
        assert response.headers["Lock-Digests"] == ", ".join(m["lock_digest"] for m in bundle["locks"])
        wrong = client.post(
            "/lock",
            params=[*params, ("format", "pylock.toml")],
            content=unique_requirements.encode(),
            headers=TEXT,
        )
        assert assert_problem(wrong, 400, "invalid-request")["context"]["field"] == "format"
        uneven: list[tuple[str, str | int | float | bool | None]] = [
            *params,
            ("cuda", "cpu"),
            ("cuda", "cu124"),
            ("cuda", "cu121"),
        ]
        problem = assert_problem(
            client.post("/lock", params=uneven, content=unique_requirements.encode(), headers=TEXT),
            400,
            "invalid-request",
        )
        assert problem["context"]["counts"] == {"python": 1, "platform": 2, "cuda": 3}
        both = {"requirements": "numpy", "target": LINUX, "targets": [LINUX]}
        assert_problem(client.post("/v1/locks", json=both), 422, "invalid-request")
        twice = {"requirements": "numpy", "targets": [LINUX, LINUX]}
        assert_problem(client.post("/v1/locks", json=twice), 400, "invalid-request")


def test_new_target_kinds_lock_and_round_trip(lockd_server: LockdServer, unique_requirements: str) -> None:
    with lockd_server.client() as client:
        for target in (
            {"platform": "x86_64-manylinux_2_34", "python": "3.14t"},
            {"platform": "linux_aarch64", "python": "3.15", "musl": "1.2"},
            {"platform": "macos_x86_64", "python": "3.13", "macos": "14"},
            {"platform": "win-arm64", "python": "3.12"},
        ):
            response = client.post("/v1/locks", json={"requirements": unique_requirements, "target": target})
            assert response.status_code == 201, response.text
            info = response.json()
            stored = client.get(f"/v1/locks/{info['input_digest']}").json()
            assert stored["target"] == info["target"]
            # a refresh re-reads the stored input, levels and all, and resolves the same lock
            refreshed = client.post(f"/v1/locks/{info['input_digest']}/refresh")
            assert refreshed.status_code == 200 and refreshed.json()["changed"] is False, refreshed.text
        kinds = [
            client.post("/v1/locks", json={"requirements": unique_requirements, "target": t}).json()["target"]
            for t in (
                {"platform": "x86_64-manylinux_2_34", "python": "3.14t"},
                {"platform": "win-arm64", "python": "3.12"},
            )
        ]
        listed = client.get("/v1/locks", params={"platform": "win-arm64", "python": "3.12"}).json()["items"]
        assert listed and {item["target"]["platform"] for item in listed} == {"windows_arm64"}
        threaded = client.get("/v1/locks", params={"python": "3.14t"}).json()["items"]
        assert threaded and {item["target"]["python"] for item in threaded} == {"3.14.0t"}
        assert kinds == [
            {"platform": "linux_x86_64", "python": "3.14.0t", "cuda": None, "glibc": "2.34"},
            {"platform": "windows_arm64", "python": "3.12.0", "cuda": None},
        ]


def test_the_dashboard_never_calls_a_lock_without_a_variant_cpu(lockd_server: LockdServer) -> None:
    with lockd_server.client() as client:
        pypi = client.post("/lock", params=LINUX, content=b"torch==2.5.1\n", headers=TEXT)
        cpu = client.post("/lock", params={**LINUX, "cuda": "cpu"}, content=b"torch==2.5.1\n", headers=TEXT)
        assert pypi.status_code in (200, 201) and cpu.status_code in (200, 201)
    with lockd_server.client("admin") as admin:
        location = admin.post("/v1/drift/runs").headers["location"]
        wait_until(
            lambda: admin.get(location).json()["run"]["status"] != "running",
            120,
            "the drift run did not finish",
        )
        page = admin.get("/dashboard", params={"platform": "linux_x86_64", "python": "3.11"}).text
        rows = re.findall(r"<td>(linux_x86_64 · py3\.11\.0 · [^<]*)</td>", page)
        assert "linux_x86_64 · py3.11.0 · none · CUDA 12 runtime from PyPI" in rows, rows
        assert "linux_x86_64 · py3.11.0 · cpu" in rows
        only_none = admin.get("/dashboard", params={"cuda": "none"}).text
        assert "· cpu</td>" not in only_none and "none · CUDA 12 runtime from PyPI" in only_none
        lock_page = admin.get(f"/dashboard/locks/{pypi.headers['Input-Digest']}")
        assert lock_page.status_code == 200 and "none · CUDA 12 runtime from PyPI" in lock_page.text
