/* Models: filled in by the model work (issue 3). */
#include "core.h"

void vl_model_open(lua_State *L) { (void)L; }
