#include "textflag.h"

// func rawCloneVM(trap, a1, a2 uintptr, prog *rawProg) (pid, errno uintptr)
TEXT ·rawCloneVM(SB),NOSPLIT|NOFRAME,$0-48
	MOVQ	trap+0(FP), AX
	MOVQ	a1+8(FP), DI
	MOVQ	a2+16(FP), SI
	MOVQ	$0, DX
	MOVQ	$0, R10
	MOVQ	$0, R8
	MOVQ	$0, R9
	// The child gets the same registers (the system call clobbers only
	// AX, CX and R11), so prog travels in R12.
	MOVQ	prog+24(FP), R12
	SYSCALL
	CMPQ	AX, $0
	JEQ	child
	CMPQ	AX, $0xfffffffffffff001
	JCS	ok
	NEGQ	AX
	MOVQ	$0, pid+32(FP)
	MOVQ	AX, errno+40(FP)
	RET
ok:
	MOVQ	AX, pid+32(FP)
	MOVQ	$0, errno+40(FP)
	RET
child:
	// On the new stack: runRawProg(prog), which exits.
	NOP	SP // tell vet SP changed - stop checking offsets
	SUBQ	$16, SP
	MOVQ	R12, 0(SP)
	CALL	·runRawProg(SB)
	MOVL	$127, DI
	MOVL	$231, AX // exit_group
	SYSCALL
	INT	$3
