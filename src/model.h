/* Models: learning course activities, providers and contents as userdata. The stages, each
 * with its own header (as LPeg splits tree / code / vm):
 *   model_value.h  values: validation and packing against the schema (schema.h)
 *   model_store.h  the model object, its fields as stored, kind picking
 *   model_json.h   JSON encoding of models
 *   model_text.h   models decoded straight from JSON text (unknown properties kept as text)
 *   model_lua.h    the Lua face (constructors, decode, check, metamethods) and the C
 *                  interface the client uses
 * This header is kept for the client code: it includes the stages' headers. */
#ifndef VL_MODEL_H
#define VL_MODEL_H

#include "model_value.h"
#include "model_store.h"
#include "model_json.h"
#include "model_text.h"
#include "model_lua.h"

#endif
