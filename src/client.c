/* Client: filled in by the client work (issue 4). */
#include "core.h"

void vl_client_open(lua_State *L) { (void)L; }
