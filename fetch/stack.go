package fetch

// callStack is how much stack an upstream call uses at its deepest: the
// call, its retries and breaker, the lean client's round trip and the
// syscalls under it. A goroutine starts on a small stack and grows it by
// copying, once per doubling, each copy walking every frame then on the
// stack; under S2 that growth took about 9 % of the gateway's CPU.
const callStack = 8 << 10

// stackIndex is never written: reading it keeps growStack's frame from
// being optimised away.
var stackIndex int

// growStack takes a callStack-sized frame while the goroutine's stack is
// still nearly empty, so that the runtime grows it once, copying almost
// nothing, before the call that needs it runs. It is for goroutines that
// exist to make one upstream call.
//
//go:noinline
func growStack() byte {
	var frame [callStack]byte
	frame[stackIndex] = 1
	return frame[callStack-1-stackIndex]
}
