# How jobs run. ngpu > 1 trains with torchrun (DDP) over that many GPUs; 0 or 1 is one process.
ngpu=${ngpu:-$(python3 -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)}
