// Every operator of the detcore core, for C++ users.
#pragma once

#include "detcore/errors.h"
#include "detcore/ops/anchors.h"
#include "detcore/ops/box_coding.h"
#include "detcore/ops/box_iou.h"
#include "detcore/ops/focal_loss.h"
#include "detcore/ops/nms.h"
#include "detcore/ops/paste_masks.h"
#include "detcore/ops/roi_align.h"
#include "detcore/ops/roi_pool.h"
#include "detcore/parallel.h"
#include "detcore/tensor.h"
