/*
 * migtrace test guest: a multiboot (v1) 32-bit kernel that dirties guest RAM
 * at a chosen pace, so live migrations of it converge or not.
 *
 * Build:  as --32 -o guest.o guest.S
 *         ld -m elf_i386 -nostdlib -e _start -Ttext=0x100000 \
 *            -n --no-warn-rwx-segments -o guest.elf guest.o
 * Boot:   qemu-system-x86_64 -machine pc -m 128 -kernel guest.elf \
 *            -append "span=32 dirty=64 delay=20000"
 *
 * Command line (multiboot cmdline, "key=<decimal>" tokens, any order):
 *   span=<MiB>     memory span dirtied, starting at 4 MiB      (default 16)
 *                  clamped to the RAM the loader reports.
 *   dirty=<pages>  pages written per burst; 0 = write nothing and halt
 *                  (the guest then never dirties RAM again)     (default 16)
 *   delay=<n>      busy-loop iterations between bursts          (default 100000)
 *
 * At boot the whole span is written once at full speed. Then each burst
 * writes one non-zero byte into each of the next <dirty> 4 KiB
 * pages of the span (round robin), so every written page is a full
 * non-zero page on the migration wire. Interrupts stay disabled; nothing
 * but RAM is touched.
 */
        .set MB_MAGIC, 0x1BADB002
        .set MB_FLAGS, 0x00000003          /* page-align modules, want mem info */
        .set SPAN_BASE, 0x400000           /* 4 MiB */

        .text
        .align 4
mb_header:
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)

        .globl _start
_start:
        cli
        movl $stack_top, %esp
        cmpl $0x2BADB002, %eax
        jne main                           /* no multiboot info: use defaults */

        /* flags bit 2: cmdline present at mbi+16 */
        testl $4, (%ebx)
        jz 1f
        pushl %ebx
        movl 16(%ebx), %esi
        call parse_cmdline
        popl %ebx
1:
        /* flags bit 0: mem_upper (KiB above 1 MiB) at mbi+8; clamp the span */
        testl $1, (%ebx)
        jz main
        movl 8(%ebx), %eax
        shrl $10, %eax                     /* MiB above 1 MiB */
        subl $4, %eax                      /* keep clear of the first 5 MiB */
        jbe main
        cmpl %eax, v_span
        jbe main
        movl %eax, v_span

main:
        movl v_span, %eax
        shll $8, %eax                      /* pages in span */
        testl %eax, %eax
        jz halt
        movl %eax, npages
        /* fill: write every page of the span once, at full speed, so the
           span is non-zero RAM (sent as full pages, not as zero pages) */
        movl $SPAN_BASE, %edi
        movl %eax, %ecx
0:
        movb $1, (%edi)
        addl $4096, %edi
        decl %ecx
        jnz 0b
        cmpl $0, v_dirty
        je halt
        xorl %ebx, %ebx                    /* page index */
        movl $1, %edx                      /* byte value, never 0 */
burst_start:
        movl v_dirty, %ecx
burst:
        movl %ebx, %edi
        shll $12, %edi
        addl $SPAN_BASE, %edi
        movb %dl, (%edi)
        incl %ebx
        cmpl npages, %ebx
        jb 2f
        xorl %ebx, %ebx                    /* next pass over the span */
        incb %dl
        orb $1, %dl
2:
        decl %ecx
        jnz burst
        movl v_delay, %ecx
        testl %ecx, %ecx
        jz burst_start
3:
        decl %ecx
        jnz 3b
        jmp burst_start

halt:
        hlt
        jmp halt

/* esi = NUL-terminated cmdline. Matches key=<decimal> at the start and after spaces. */
parse_cmdline:
        movb $' ', %ah                     /* previous char */
.Lscan:
        movb (%esi), %al
        testb %al, %al
        jz .Lret
        cmpb $' ', %ah
        jne .Ladvance
        movl $keys, %ebp
.Lkey:
        movl (%ebp), %edi                  /* key string */
        testl %edi, %edi
        jz .Ladvance
        movl 4(%ebp), %ecx                 /* key length */
        pushl %esi
        cld
        repe cmpsb
        jne .Lnomatch
        /* matched: parse number at esi */
        addl $4, %esp                      /* keep advanced esi */
        xorl %eax, %eax
.Lnum:
        movzbl (%esi), %ecx
        subl $'0', %ecx
        cmpl $9, %ecx
        ja .Lnumdone
        imull $10, %eax, %eax
        addl %ecx, %eax
        incl %esi
        jmp .Lnum
.Lnumdone:
        movl 8(%ebp), %edi
        movl %eax, (%edi)
        movb $'x', %ah
        jmp .Lscan
.Lnomatch:
        popl %esi
        addl $12, %ebp
        jmp .Lkey
.Ladvance:
        movb (%esi), %ah
        incl %esi
        jmp .Lscan
.Lret:
        ret

        .data
        .align 4
v_span:  .long 16
v_dirty: .long 16
v_delay: .long 100000
npages:  .long 0
keys:
        .long k_span, 5, v_span
        .long k_dirty, 6, v_dirty
        .long k_delay, 6, v_delay
        .long 0
k_span:  .ascii "span="
k_dirty: .ascii "dirty="
k_delay: .ascii "delay="

        .bss
        .align 16
stack:  .skip 16384
stack_top:
