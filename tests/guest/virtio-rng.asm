; berth test guest: virtio-rng driver (see guest.asm).
section .text
; ---- virtio-mmio entropy ----
rng_test:
    mov ebx, MMIO_BASE
    mov ecx, 8
.probe:
    cmp dword [ebx], 0x74726976
    jne .probe_next
    cmp dword [ebx + 8], 4      ; entropy device
    je .found
.probe_next:
    add ebx, 0x1000
    dec ecx
    jnz .probe
    mov esi, msg_rng_none
    call puts
    ret
.found:
    mov dword [ebx + 0x70], 0
    mov dword [ebx + 0x70], 3
    mov dword [ebx + 0x24], 0
    mov dword [ebx + 0x20], 0
    mov dword [ebx + 0x24], 1
    mov dword [ebx + 0x20], 1           ; VIRTIO_F_VERSION_1
    mov dword [ebx + 0x70], 11
    mov dword [ebx + 0x30], 0
    mov dword [ebx + 0x38], QSIZE
    mov dword [ebx + 0x80], rngq_desc
    mov dword [ebx + 0x84], 0
    mov dword [ebx + 0x90], rngq_avail
    mov dword [ebx + 0x94], 0
    mov dword [ebx + 0xa0], rngq_used
    mov dword [ebx + 0xa4], 0
    mov dword [ebx + 0x44], 1
    mov dword [ebx + 0x70], 15
    mov dword [rngq_desc + 0], rng_buf
    mov dword [rngq_desc + 4], 0
    mov dword [rngq_desc + 8], 16
    mov word [rngq_desc + 12], 2        ; WRITE
    xor edi, edi                        ; requests done
.request:
    mov eax, edi
    and eax, QSIZE - 1
    mov word [rngq_avail + 4 + eax * 2], 0
    lea eax, [edi + 1]
    mov [rngq_avail + 2], ax
    mov dword [ebx + 0x50], 0
.wait:
    cmp [rngq_used + 2], ax
    jne .wait
    mov esi, msg_rng
    call puts
    xor ecx, ecx
.hex:
    mov al, [rng_buf + ecx]
    call put_hex8
    inc ecx
    cmp ecx, 16
    jne .hex
    call newline
    inc edi
    cmp edi, 2
    jne .request
    ret

msg_rng_none:   db "rng: no device", 10, 0
msg_rng:        db "rng: ", 0

section .bss
alignb 4096
rngq_desc:  resb 16 * QSIZE
alignb 4096
rngq_avail: resb 4 + 2 * QSIZE + 2
alignb 4096
rngq_used:  resb 4 + 8 * QSIZE + 2
alignb 16
rng_buf:    resb 16
