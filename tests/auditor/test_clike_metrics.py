"""C-family metrics equal lizard's, and GPU sources that lizard's own walk skips are analysed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import lizard
import pytest

from auditor.static.clike_metrics import analyze_clike

CPP = textwrap.dedent("""
    #include <vector>
    namespace acts {
    template <typename T>
    class Grid {
     public:
      int find(const std::vector<T>& values, T key, int start, int stop) const {
        for (int i = start; i < stop; ++i) {
          if (values[i] == key && i > 0) {
            return i;
          } else if (values[i] > key || i < 0) {
            while (key) { --key; }
          }
        }
        return key ? -1 : -2;
      }
    };
    int helper(int a) { switch (a) { case 1: return 1; case 2: return 2; default: return 0; } }
    }  // namespace acts
    """)

CUDA = textwrap.dedent("""
    __global__ void saxpy(int n, float a, const float* x, float* y) {
      int i = blockIdx.x * blockDim.x + threadIdx.x;
      if (i < n) y[i] = a * x[i] + y[i];
    }
    __device__ inline float clamp(float v) { return v < 0.f ? 0.f : (v > 1.f ? 1.f : v); }
    void launch(int n, float a, const float* x, float* y) {
      saxpy<<<(n + 255) / 256, 256>>>(n, a, x, y);
      cudaDeviceSynchronize();
    }
    """)


@pytest.mark.parametrize("name, code", [("grid.hpp", CPP), ("kernels.cu", CUDA), ("impl.ipp", CPP),
                                        ("k.sycl", CPP), ("k.hip", CUDA)])
def test_function_metrics_equal_lizard(name: str, code: str) -> None:
    ours = analyze_clike(code.encode(), name)["functions"]
    reference = lizard.analyze_file.analyze_source_code(name, code).function_list
    nesting = lizard.FileAnalyzer(lizard.get_extensions(["nd"])).analyze_source_code(name, code).function_list
    assert len(ours) == len(reference) > 0
    for mine, theirs, with_nd in zip(ours, reference, nesting):
        assert mine["nesting"] == with_nd.max_nesting_depth
        assert mine["qualified_name"] == theirs.name
        assert mine["ccn"] == theirs.cyclomatic_complexity
        assert mine["nloc"] == theirs.nloc
        assert mine["params"] == theirs.parameter_count
        assert (mine["start_line"], mine["end_line"]) == (theirs.start_line, theirs.end_line)


def test_cuda_launches_do_not_confuse_the_parser() -> None:
    functions = {f["qualified_name"]: f for f in analyze_clike(CUDA.encode(), "kernels.cu")["functions"]}
    assert set(functions) == {"saxpy", "clamp", "launch"}
    assert functions["saxpy"]["ccn"] == 2
    assert functions["clamp"]["ccn"] == 3
    assert functions["launch"]["params"] == 4


def test_nesting_depth_and_grade() -> None:
    find = analyze_clike(CPP.encode(), "grid.hpp")["functions"][0]
    assert find["qualified_name"] == "acts::Grid::find"
    assert find["ccn"] == 8  # for, if, &&, else if, ||, while, ?:
    assert find["grade"] == "B"
    assert find["nesting"] == 3  # for > if/else-if > while


def test_lizard_directory_walk_misses_gpu_files_but_the_audit_does_not(tmp_path: Path) -> None:
    from auditor.config import AuditConfig
    from auditor.static.engine import run_audit

    for name in ("a.cpp", "b.cu", "c.cuh", "d.ipp", "e.sycl", "f.hip", "g.inl"):
        (tmp_path / name).write_text(CUDA)
    walked = {Path(info.filename).name for info in lizard.analyze([str(tmp_path)])}
    assert walked == {"a.cpp"}
    report = run_audit([tmp_path], AuditConfig(pylint="off", jobs=1), None)
    assert {f["path"] for f in report["files"]} == {"a.cpp", "b.cu", "c.cuh", "d.ipp", "e.sycl", "f.hip", "g.inl"}
    assert {f["language"] for f in report["files"]} == {"C++", "CUDA", "SYCL", "HIP"}
    assert report["summary"]["total"]["functions"] == 7 * 3


def test_latin1_comments_are_read_with_a_note() -> None:
    result = analyze_clike("// caf\xe9\nint f() { return 0; }\n".encode("latin-1"), "old.C")
    assert result["functions"][0]["name"] == "f"
    assert "Latin-1" in result["notes"][0]
