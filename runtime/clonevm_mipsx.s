//go:build mips || mipsle

#include "textflag.h"

// func rawCloneVM(trap, a1, a2 uintptr, prog *rawProg) (pid, errno uintptr)
TEXT ·rawCloneVM(SB),NOSPLIT|NOFRAME,$0-24
	MOVW	trap+0(FP), R2
	MOVW	a1+4(FP), R4
	MOVW	a2+8(FP), R5
	MOVW	R0, R6
	MOVW	R0, R7
	// The child gets the same registers but R2 and R7: prog travels in
	// R16.
	MOVW	prog+12(FP), R16
	SYSCALL
	BNE	R7, fail
	BEQ	R2, child
	MOVW	R2, pid+16(FP)
	MOVW	R0, errno+20(FP)
	RET
fail:
	MOVW	R0, pid+16(FP)
	MOVW	R2, errno+20(FP)
	RET
child:
	// On the new stack: runRawProg(prog), which exits.
	NOP	R29 // tell vet SP changed - stop checking offsets
	ADDU	$-8, R29
	MOVW	R16, 4(R29)
	JAL	·runRawProg(SB)
	MOVW	$127, R4
	MOVW	$4246, R2 // exit_group
	SYSCALL
	MOVW	R0, (R0)
