// Devices and dtypes from their Python names, for the workspace-size queries
// (`_C.<op>_workspace_bytes(device, dtype, ...)`), which run before any array
// exists.
#pragma once

#include <string>

#include "detcore/tensor.h"

namespace detcore::bindings {

// "cpu", "cuda" (device 0) or "cuda:N", as str(torch.device) writes them.
Device device_from_name(const std::string& name);

// "float32", "bfloat16", "int64", ...: the names dtype_name() gives, which are
// numpy's and torch's (without "torch.").
DType dtype_from_name(const std::string& name);

}  // namespace detcore::bindings
