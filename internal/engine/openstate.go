package engine

// OpenExchanged reports whether the connection's open frames have been exchanged (or
// the server sent its own to close the connection). Once it returns true, User,
// Mechanism, TLS, RemoteOpen and ContainerID may be read from any goroutine; before,
// the serving goroutine may still be setting them.
func (c *Conn) OpenExchanged() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opened
}
