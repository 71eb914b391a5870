#!/usr/bin/env python3
"""The layering rule of docs/design.md, checked over the #include lines of src/ and analysis/.

Each layer may include only itself and the layers it depends on; MPI only in sweep/; HDF5 and
yaml-cpp only in io/, and an io/ header that includes them only from io/; CUDA only in
backend/cuda/ and the NCCL collective. Prints every violation as FILE:LINE: message and exits 1 when there is one.
Usage: tools/check_layers.py [REPOSITORY_ROOT]
"""
import pathlib
import re
import sys

# layer -> the layers it may include (besides itself), as docs/design.md's table states them.
ALLOWED = {
    "core": set(),
    "backend": {"core"},
    "autograd": {"backend", "core"},
    "nn": {"autograd", "backend", "core"},
    "models": {"nn", "autograd", "backend", "core"},
    "data": {"core"},
    "io": {"core"},
    "train": {"models", "nn", "autograd", "backend", "core", "data", "io"},
    "sweep": {"train", "models", "nn", "autograd", "backend", "core", "data", "io"},
    "analysis": {"io", "core"},
    "cli": {"sweep", "train", "models", "nn", "autograd", "backend", "core", "data", "io",
            "analysis"},
}
MPI = re.compile(r"^(mpi\.h|mpi_)")
HDF5_YAML = re.compile(r"^(hdf5|H5[A-Za-z]*\.h|yaml-cpp/)")
CUDA = re.compile(r"^(cuda|cudnn|cublas|nccl|curand|cusparse|nvrtc|device_launch)")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def layer_of(path, root):
    relative = path.relative_to(root)
    if relative.parts[0] == "analysis":
        return "analysis"
    return relative.parts[1]


def check(root):
    problems = []
    private_io = set()  # io/ headers that include HDF5 or yaml-cpp
    for header in sorted((root / "src" / "io").glob("*.h")):
        for line in header.read_text(errors="replace").splitlines():
            match = INCLUDE.match(line)
            if match and HDF5_YAML.match(match.group(2)):
                private_io.add("io/" + header.name)
    files = [p for p in sorted((root / "src").rglob("*")) if p.suffix in {".h", ".cpp", ".cu", ".cuh"}]
    files += [p for p in sorted((root / "analysis").glob("*")) if p.suffix in {".h", ".cpp"}]
    for path in files:
        layer = layer_of(path, root)
        relative = path.relative_to(root).as_posix()
        in_cuda = relative.startswith("src/backend/cuda/") or relative in {
            "src/sweep/nccl_collective.cpp", "src/sweep/nccl_collective.h"}
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            bracket, name = match.groups()
            where = f"{relative}:{number}"
            if bracket == '"' and "/" in name and layer != "analysis":
                target = name.split("/")[0]
                if target in ALLOWED and target != layer and target not in ALLOWED[layer]:
                    problems.append(f"{where}: {layer}/ includes {name}, but {layer} may depend "
                                    f"only on {', '.join(sorted(ALLOWED[layer])) or 'nothing'}")
            if bracket == '"' and layer == "analysis" and "/" in name:
                target = name.split("/")[0]
                if target in ALLOWED and target not in ALLOWED["analysis"]:
                    problems.append(f"{where}: analysis includes {name}, but analysis may depend "
                                    f"only on io and core")
            if MPI.match(name) and layer != "sweep":
                problems.append(f"{where}: MPI ({name}) outside src/sweep/")
            if HDF5_YAML.match(name) and layer != "io":
                problems.append(f"{where}: HDF5/yaml-cpp ({name}) outside src/io/")
            if name in private_io and layer != "io":
                problems.append(f"{where}: {name} includes HDF5/yaml-cpp and is private to io/")
            if CUDA.match(name) and not in_cuda:
                problems.append(f"{where}: CUDA ({name}) outside src/backend/cuda/ and the NCCL "
                                f"collective")
    return problems, len(files)


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parents[1])
    problems, count = check(root.resolve())
    for problem in problems:
        print(problem)
    print(f"check_layers: {count} files, {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
