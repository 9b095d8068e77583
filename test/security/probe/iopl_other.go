//go:build !amd64

package main

func ioplProbe() result { return blocked("no iopl on this architecture") }
