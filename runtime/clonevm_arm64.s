#include "textflag.h"

// func rawCloneVM(trap, a1, a2 uintptr, prog *rawProg) (pid, errno uintptr)
TEXT ·rawCloneVM(SB),NOSPLIT|NOFRAME,$0-48
	MOVD	trap+0(FP), R8
	MOVD	a1+8(FP), R0
	MOVD	a2+16(FP), R1
	MOVD	$0, R2
	MOVD	$0, R3
	MOVD	$0, R4
	// The child gets the same registers but R0: prog travels in R10.
	MOVD	prog+24(FP), R10
	SVC
	CMP	ZR, R0
	BEQ	child
	CMN	$4095, R0
	BCC	ok
	NEG	R0, R0
	MOVD	ZR, pid+32(FP)
	MOVD	R0, errno+40(FP)
	RET
ok:
	MOVD	R0, pid+32(FP)
	MOVD	ZR, errno+40(FP)
	RET
child:
	// On the new stack: runRawProg(prog), which exits.
	SUB	$16, RSP
	MOVD	R10, 8(RSP)
	BL	·runRawProg(SB)
	MOVD	$127, R0
	MOVD	$94, R8 // exit_group
	SVC
	MOVD	ZR, (ZR)
