; berth test guest: a tiny ring-0 program booted as a PVH ELF (by berth's VMM and by qemu).
;
; It enters in 32-bit protected mode without paging (the PVH entry, XEN_ELFNOTE_PHYS32_ENTRY)
; with EBX pointing at the hvm_start_info structure, and then:
;   1. prints the marker line  "berth-guest: hello"  on the 8250 serial port (0x3f8);
;   2. prints "mem_mib=N": the RAM in the PVH memory map (type 1 entries), rounded up to MiB;
;   3. prints "cpus=N": the enabled processor entries of the MP table (Intel MultiProcessor
;      spec), found by its floating pointer "_MP_" in the EBDA (0x9fc00) or 0xf0000-0xfffff;
;      0 when there is none;
;   4. for the first virtio-mmio block device in 0xd0000000 + i*0x1000 (i < 8): initialises it
;      (virtio 1.x, one queue of 8), prints "blk: capacity=N", reads sector 0 and prints its
;      first 32 bytes ("blk: sector0=..."), reads sector 1 ("blk: sector1 was=..."), writes
;      sector 1 with "berth-guest wrote sector 1" ("blk: write status=S"), flushes
;      ("blk: flush status=S") and reads sector 1 back ("blk: sector1=...");
;   5. with "net" on the command line, for the first virtio-mmio network device: prints
;      "net: mac=…", sends one broadcast frame of ethertype 0x88b5 carrying
;      "berth-guest frame" ("net: sent"), then waits for a frame of that ethertype and prints
;      its first 16 payload bytes ("net: received=…"), skipping other frames;
;      with "rng": reads 16 bytes twice from the first virtio-rng device and prints them
;      in hex ("rng: …");
;      with "vsock": connects from port 5000 to host port 1234 over the first virtio-vsock
;      device ("vsock: connected" or "vsock: refused"), sends "hello from the guest", prints
;      the host's answer ("vsock: received=…") and shuts the connection down; with
;      "vsock-listen": waits for a host connection to its port 5000 ("vsock: accepted") and
;      echoes the first data it receives ("vsock: echoed");
;   6. with "crash" on the command line: executes ud2 without an IDT (a triple fault);
;      with "tick": prints "tick N" forever, N counting up from 1;
;   7. else prints "berth-guest: done" and exits: with "reset" on the command line through
;      the i8042 (0xfe to port 0x64), otherwise by writing 0 to the debug-exit port 0xf4.
; The drivers are in virtio-*.asm beside this file (included below).
; Build: nasm -f elf64 -I tests/guest/ guest.asm -o guest.o
;        ld -m elf_x86_64 --no-warn-rwx-segments -T guest.ld -o guest.elf guest.o

BITS 32

SERIAL      equ 0x3f8
DEBUG_EXIT  equ 0xf4
MMIO_BASE   equ 0xd0000000
QSIZE       equ 8

section .note.Xen note alloc noexec nowrite align=4
    dd 4                    ; n_namesz
    dd 4                    ; n_descsz
    dd 18                   ; XEN_ELFNOTE_PHYS32_ENTRY
    db "Xen", 0
    dd pvh_start

section .text
global pvh_start
pvh_start:
    cli
    mov esp, stack_top
    mov [start_info], ebx

    mov esi, msg_hello
    call puts

    ; ---- memory: sum of RAM entries of the PVH memmap, in KiB ----
    mov ebx, [start_info]
    mov esi, [ebx + 40]         ; memmap_paddr (low 32 bits)
    mov ecx, [ebx + 48]         ; memmap_entries
    cmp ecx, 64
    jbe .mm_ok
    mov ecx, 64
.mm_ok:
    xor edi, edi                ; KiB total
.mm_loop:
    test ecx, ecx
    jz .mm_done
    cmp dword [esi + 16], 1     ; type RAM
    jne .mm_next
    mov eax, [esi + 8]          ; size low
    mov edx, [esi + 12]         ; size high
    shrd eax, edx, 10           ; size >> 10 (fits: < 4 TiB)
    add edi, eax
.mm_next:
    add esi, 24
    dec ecx
    jmp .mm_loop
.mm_done:
    mov esi, msg_mem
    call puts
    mov eax, edi
    add eax, 1023
    shr eax, 10
    call put_dec
    call newline

    ; ---- CPUs: MP table ----
    mov esi, 0x9fc00
    mov edi, 0xa0000
    call find_mp
    test esi, esi
    jnz .mp_found
    mov esi, 0xf0000
    mov edi, 0x100000
    call find_mp
.mp_found:
    xor edx, edx                ; processor count
    test esi, esi
    jz .mp_done
    mov esi, [esi + 4]          ; physical address of the configuration table
    test esi, esi
    jz .mp_done
    cmp dword [esi], 'PCMP'
    jne .mp_done
    movzx ecx, word [esi + 34]  ; entry count
    add esi, 44
.mp_entry:
    test ecx, ecx
    jz .mp_done
    cmp byte [esi], 0           ; processor entry (20 bytes)
    jne .mp_other
    test byte [esi + 3], 1      ; enabled
    jz .mp_skip_cpu
    inc edx
.mp_skip_cpu:
    add esi, 20
    dec ecx
    jmp .mp_entry
.mp_other:
    add esi, 8
    dec ecx
    jmp .mp_entry
.mp_done:
    mov esi, msg_cpus
    call puts
    mov eax, edx
    call put_dec
    call newline

    call blk_test

    mov esi, str_net
    call cmdline_has
    test eax, eax
    jz .no_net
    call net_test
.no_net:
    mov esi, str_rng
    call cmdline_has
    test eax, eax
    jz .no_rng
    call rng_test
.no_rng:
    mov esi, str_vsock_listen
    call cmdline_has
    test eax, eax
    jz .no_listen
    call vsock_listen
    jmp .no_vsock
.no_listen:
    mov esi, str_vsock
    call cmdline_has
    test eax, eax
    jz .no_vsock
    call vsock_test
.no_vsock:
    mov esi, str_crash
    call cmdline_has
    test eax, eax
    jz .no_crash
    ud2                         ; no IDT: #UD, #DF, triple fault
.no_crash:
    mov esi, str_tick
    call cmdline_has
    test eax, eax
    jnz tick_loop

    mov esi, msg_done
    call puts
    mov esi, str_reset
    call cmdline_has
    test eax, eax
    jz .debug_exit
    mov al, 0xfe
    out 0x64, al
.debug_exit:
    mov al, 0
    out DEBUG_EXIT, al
.halt:
    hlt
    jmp .halt

tick_loop:
    mov dword [ticks], 0
.next:
    mov ecx, 100000
.delay:
    dec ecx
    jnz .delay
    inc dword [ticks]
    mov esi, msg_tick
    call puts
    mov eax, [ticks]
    call put_dec
    call newline
    jmp .next

; find_mp: ESI = start, EDI = end; returns ESI = floating pointer address or 0.
find_mp:
.loop:
    cmp esi, edi
    jae .none
    cmp dword [esi], '_MP_'
    je .found
    add esi, 16
    jmp .loop
.none:
    xor esi, esi
.found:
    ret

; cmdline_has: ESI = NUL-terminated word; EAX = 1 if the command line contains it.
cmdline_has:
    push ebx
    push edi
    mov ebx, [start_info]
    mov edi, [ebx + 24]         ; cmdline_paddr
    xor eax, eax
    test edi, edi
    jz .out
.pos:
    cmp byte [edi], 0
    je .out
    xor ecx, ecx
.cmp:
    mov dl, [esi + ecx]
    test dl, dl
    jz .yes
    cmp dl, [edi + ecx]
    jne .adv
    inc ecx
    jmp .cmp
.adv:
    inc edi
    jmp .pos
.yes:
    mov eax, 1
.out:
    pop edi
    pop ebx
    ret

; ---- serial output ----
putc:
    push edx
    push eax
    mov dx, SERIAL + 5
.wait:
    in al, dx
    test al, 0x20
    jz .wait
    pop eax
    mov dx, SERIAL
    out dx, al
    pop edx
    ret

puts:
    push eax
.loop:
    mov al, [esi]
    test al, al
    jz .end
    call putc
    inc esi
    jmp .loop
.end:
    pop eax
    ret

newline:
    push eax
    mov al, 10
    call putc
    pop eax
    ret

; put_dec: EAX as unsigned decimal.
put_dec:
    push ebx
    push ecx
    push edx
    mov ebx, 10
    xor ecx, ecx
.div:
    xor edx, edx
    div ebx
    push edx
    inc ecx
    test eax, eax
    jnz .div
.out:
    pop eax
    add al, '0'
    call putc
    dec ecx
    jnz .out
    pop edx
    pop ecx
    pop ebx
    ret

msg_hello:      db "berth-guest: hello", 10, 0
msg_mem:        db "mem_mib=", 0
msg_cpus:       db "cpus=", 0
msg_done:       db "berth-guest: done", 10, 0
msg_tick:       db "tick ", 0
str_tick:       db "tick", 0
str_reset:      db "reset", 0
str_crash:      db "crash", 0
str_net:        db "net", 0
str_rng:        db "rng", 0
str_vsock:      db "vsock", 0
str_vsock_listen: db "vsock-listen", 0


%include "virtio-blk.asm"
%include "virtio-net.asm"
%include "virtio-rng.asm"
%include "virtio-vsock.asm"

section .bss
start_info: resd 1
ticks:      resd 1
alignb 16
stack:      resb 4096
stack_top:
