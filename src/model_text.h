/* Models decoded straight from JSON text: one scan of the text (json_scan.h), the values of
 * known fields converted from it, the unknown members kept as the text they came in (see
 * model_store.h). Depends on model_store.h, model_value.h and the JSON layer. */
#ifndef VL_MODEL_TEXT_H
#define VL_MODEL_TEXT_H

#include <stddef.h>
#include "luacompat.h"

/* Decodes a model straight from its JSON text (family: "activity" | "provider" | "content",
 * or NULL to pick), or a collection (the table viva.decode gives: value = the models).
 * Pushes it and returns 1, or returns 0 with nothing pushed when the text is not of the
 * shapes this path takes: the caller then decodes it with cjson and builds the model from
 * the table (the same model, or the message). Raises only on memory errors. */
int vl_model_decode_text(lua_State *L, const char *s, size_t n, const char *family);

#endif
