// Status and Result are part of the public API (include/kiln/status.h); the library includes
// them from here like every other core header.
#pragma once

#include "kiln/status.h"
