package flashsys

import "context"

type ctx = context.Context

var ctxBackground = context.Background()
