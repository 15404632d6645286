# Writes tests/fixtures/torch_lstm.json: PyTorch nn.LSTM on fixed, formula-made weights
# (run: target/bench-venv/bin/python scripts/torch_lstm_fixture.py > tests/fixtures/torch_lstm.json).
import math, torch, json
torch.set_printoptions(precision=8)
T, B, I, H = 4, 2, 3, 5
lstm = torch.nn.LSTM(I, H, num_layers=1)
def fill(t, k):
    n = t.numel()
    vals = [math.sin(0.37 * (i + 1) + k) * 0.5 for i in range(n)]
    return torch.tensor(vals, dtype=torch.float32).reshape(t.shape)
with torch.no_grad():
    lstm.weight_ih_l0.copy_(fill(lstm.weight_ih_l0, 1))
    lstm.weight_hh_l0.copy_(fill(lstm.weight_hh_l0, 2))
    lstm.bias_ih_l0.copy_(fill(lstm.bias_ih_l0, 3))
    lstm.bias_hh_l0.copy_(fill(lstm.bias_hh_l0, 4))
x = fill(torch.zeros(T, B, I), 5).requires_grad_()
h0 = fill(torch.zeros(1, B, H), 6).requires_grad_()
c0 = fill(torch.zeros(1, B, H), 7).requires_grad_()
out, _ = lstm(x, (h0, c0))
(out * fill(torch.zeros(T, B, H), 8)).sum().backward()
print(json.dumps({
  "out": out.detach().flatten().tolist(),
  "grad_x": x.grad.flatten().tolist(),
  "grad_w_hh": lstm.weight_hh_l0.grad.flatten().tolist(),
  "grad_c0": c0.grad.flatten().tolist(),
}))
