# Sourced by test.sh and demo.sh: makes sure the virtual environment in
# .venv (or $DETCORE_VENV) has numpy, PyTorch 2.13.0 (CPU), pytest,
# pycocotools, Pillow, matplotlib and the build tools, then builds and
# installs detcore from this checkout into it. Sets $venv.
venv=${DETCORE_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r requirements-test.txt
echo "building detcore (DETCORE_CUDA=${DETCORE_CUDA:-AUTO}) ..."
"$venv/bin/python" -m pip install -q --no-build-isolation --no-deps .
