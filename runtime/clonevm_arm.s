#include "textflag.h"

// func rawCloneVM(trap, a1, a2 uintptr, prog *rawProg) (pid, errno uintptr)
TEXT ·rawCloneVM(SB),NOSPLIT|NOFRAME,$0-24
	MOVW	trap+0(FP), R7
	MOVW	a1+4(FP), R0
	MOVW	a2+8(FP), R1
	MOVW	$0, R2
	MOVW	$0, R3
	MOVW	$0, R4
	// The child gets the same registers but R0: prog travels in R8.
	MOVW	prog+12(FP), R8
	SWI	$0
	CMP	$0, R0
	BEQ	child
	MOVW	$0xfffff001, R1
	CMP	R1, R0
	BLO	ok
	RSB	$0, R0, R0
	MOVW	$0, R1
	MOVW	R1, pid+16(FP)
	MOVW	R0, errno+20(FP)
	RET
ok:
	MOVW	R0, pid+16(FP)
	MOVW	$0, R1
	MOVW	R1, errno+20(FP)
	RET
child:
	// On the new stack: runRawProg(prog), which exits.
	NOP	R13 // tell vet SP changed - stop checking offsets
	SUB	$8, R13
	MOVW	R8, 4(R13)
	BL	·runRawProg(SB)
	MOVW	$127, R0
	MOVW	$248, R7 // exit_group
	SWI	$0
	MOVW	$0, R0
	MOVW	R0, (R0)
