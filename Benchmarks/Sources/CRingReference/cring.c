#include "cring.h"
