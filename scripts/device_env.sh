# Sourced by the device scripts (scripts/device_*.sh) from the repository root: makes ttblur
# importable on the device machine, which has torch but no pydantic, from the wheels carried in
# `.whl` (docs/reference-model.md says how to download them), and stops at once, before any
# device time goes to a run that cannot import, when it still cannot.
export PYTHONPATH=src PYTHONUNBUFFERED=1
if [ -d .whl ] && ! python3 -c "import pydantic" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:src
fi
if ! python3 -c "import ttblur" 2>/dev/null; then
    python3 -c "import ttblur" 2>&1 | tail -1 >&2
    echo "ttblur does not import on this machine: carry the wheels in .whl (docs/reference-model.md)" >&2
    exit 2
fi
