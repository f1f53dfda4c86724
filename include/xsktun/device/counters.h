// The device's counters are the daemon's one set (common/counters.h), under their device names.
#pragma once

#include "xsktun/common/counters.h"

namespace xsktun::device {
using xsktun::Counter;
using xsktun::counter_name;
using xsktun::Counters;
using xsktun::CounterValues;
}  // namespace xsktun::device
