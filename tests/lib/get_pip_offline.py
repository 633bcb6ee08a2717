"""Stands in for the get-pip script that ansible-test downloads from a host outside the package index
(unreachable here): ansible-test runs it in a new virtualenv with pip's install arguments
(`pip==<version>`, options). It bootstraps pip from the interpreter's bundled copy (ensurepip), then
installs what was asked for from the package index, as the real script would."""

import subprocess
import sys

# Options of the real get-pip script that pip itself does not know.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

# In a child process: ensurepip points PIP_CONFIG_FILE at /dev/null in its own environment, which
# would hide the machine's pip configuration (index, CA bundle) from the install below.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet"]
                      + [a for a in sys.argv[1:] if a not in GET_PIP_ONLY])
