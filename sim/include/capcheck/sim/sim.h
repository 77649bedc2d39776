// Umbrella header of the engine simulator (capcheck::sim).
#pragma once

#include "capcheck/sim/acceptance.h"
#include "capcheck/sim/batch_sizes.h"
#include "capcheck/sim/engine.h"
#include "capcheck/sim/engine_config.h"
#include "capcheck/sim/iteration.h"
#include "capcheck/sim/request.h"
#include "capcheck/sim/scheduler.h"
