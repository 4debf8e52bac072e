// Replaces the global operator new for the test binary to count heap allocations, so tests can
// assert that a code path allocates nothing.
#pragma once

#include <cstdint>

namespace kiln::testing_support {
int64_t AllocationCount();
}
