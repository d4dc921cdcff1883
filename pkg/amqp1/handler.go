package amqp1

import "context"

// Handler decides what happens to the links a peer attaches. A
// connection's Handler comes from ConnOptions.NewHandler, so it can keep
// per-connection state (for example the CBS tokens the peer has put).
type Handler interface {
	// Attach is called, in its own goroutine, when the peer attaches a
	// link; ctx is the connection's context. Returning nil accepts the
	// link: the attach is answered and, if the peer is the sender, credit
	// is granted. The Handler may keep l and use it from any goroutine,
	// during and after Attach; typically it starts a goroutine looping on
	// l.Receive or l.Send.
	//
	// Returning an *Error refuses the link as the spec describes: the
	// attach is answered with a null source and a null target, as
	// Azure IoT Hub and Event Hubs answer (an amqp:link:redirect too),
	// and followed by a detach with closed=true carrying the error. Returning a *DetachAfterAttach accepts the link
	// and detaches it at once with its error. Any other error refuses the
	// link with amqp:internal-error and the error's text as description.
	//
	// Attach may block (frames for other links keep flowing) but should
	// return when ctx is done: Serve waits for pending Attach calls before
	// it returns.
	Attach(ctx context.Context, l *Link) error
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(ctx context.Context, l *Link) error

// Attach calls f(ctx, l).
func (f HandlerFunc) Attach(ctx context.Context, l *Link) error { return f(ctx, l) }

// refuseAll is the Handler used when ConnOptions.NewHandler is nil.
type refuseAll struct{}

func (refuseAll) Attach(context.Context, *Link) error {
	return &Error{Condition: ErrCondNotFound, Description: "no handler for links"}
}
