"""audiocraft without a torch-matched xformers. Import this module before anything of audiocraft.

audiocraft 1.3.0 imports ``xformers.ops`` when its transformer module loads, but with its
default ``'torch'`` attention backend (SynthGen never selects the ``'xformers'`` one) it only
calls ``ops.unbind`` (``torch.unbind`` with a cheaper backward) and instantiates
``ops.LowerTriangularMask`` as a flag for a causal mask, which it then hands to
``torch.nn.functional.scaled_dot_product_attention`` as ``is_causal``. Each xformers wheel is
built for one torch release, so pinning it would tie SynthGen to that torch (Colab moves on).
When ``xformers.ops`` does not import (absent, or built for another torch) this module puts a
stand-in with those two names in :data:`sys.modules`; its ``memory_efficient_attention`` (the
``'xformers'`` backend) raises. A working xformers is left alone.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types

import torch

XFORMERS_STAND_IN = "synthgen_lib.models.audiocraft_compat"  # the stand-in's __file__, to tell it apart


class LowerTriangularMask:
    """A causal mask, as a flag: audiocraft's torch backend passes ``is_causal=mask is not None``."""


def memory_efficient_attention(*args, **kwargs):
    raise RuntimeError("audiocraft's 'xformers' attention backend needs xformers built for this torch "
                       f"({torch.__version__}); SynthGen uses its default 'torch' backend")


def _module(name: str, **names) -> types.ModuleType:
    module = types.ModuleType(name, "SynthGen's stand-in for the parts of xformers audiocraft uses")
    # a spec, so that importlib.util.find_spec("xformers") (libraries probing for it) answers instead of raising;
    # no submodules: audiocraft's optional xformers.profiler import fails as without xformers
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, origin=XFORMERS_STAND_IN, is_package=True)
    module.__path__ = module.__spec__.submodule_search_locations
    module.__file__ = XFORMERS_STAND_IN
    module.__dict__.update(names)
    return module


def _stand_in() -> types.ModuleType:
    ops = _module("xformers.ops", unbind=torch.unbind, LowerTriangularMask=LowerTriangularMask,
                  memory_efficient_attention=memory_efficient_attention)
    return _module("xformers", ops=ops)


def _install() -> bool:
    """True when the real ``xformers.ops`` imports, else put the stand-in in its place."""
    try:
        importlib.import_module("xformers.ops")
        return True
    except Exception:  # a wheel built for another torch fails in many ways (OSError, AttributeError, ...)
        for name in [n for n in sys.modules if n == "xformers" or n.startswith("xformers.")]:
            del sys.modules[name]  # half-imported modules of the broken xformers
        package = _stand_in()
        sys.modules["xformers"], sys.modules["xformers.ops"] = package, package.ops
        return False


REAL_XFORMERS = _install()
