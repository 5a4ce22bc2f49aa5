// Every operator of the detcore core, for C++ users.
#pragma once

#include "detcore/errors.h"
#include "detcore/parallel.h"
#include "detcore/tensor.h"
#include "detcore/ops/box_iou.h"
#include "detcore/ops/paste_masks.h"
