#!/usr/bin/env python3
"""Peer benchmark: PyTorch (CPU, float64) on the same two training steps as cgloop's
`cargo bench --bench nn` (benches/nn.rs), for side-by-side comparison on one machine.

What it measures: optimizer steps per second, batch 64 frames, after a warm-up, of
  force_matching_step  fit_potential's step: the 5-bead CG potential's networks
                       (src/nn/cg_potential.rs; 16 Gaussian basis functions on [0, 1.2] nm,
                       pair one-hot, MLP [26, 64, 64, 1] with SiLU, and the torsion MLP
                       [4, 64, 64, 1] on (cos, sin) of the two consecutive dihedrals +
                       one-hot; the priors do not train, so fit_potential takes their
                       forces off the targets once), forces -dU/dz by autograd with
                       create_graph=True (the idiomatic PyTorch way; cgloop writes the
                       gradient out analytically), loss mean |F - F_target|^2, Adam;
  map_step             train_map's joint step at alanine dipeptide's size (22 atoms, 5
                       beads): EGNN scores (src/nn/equivariant.rs, 2 layers, 32 features,
                       17-wide messages, graph = bonds + pairs within 0.5 nm) plus the
                       clustering prior, P = softmax over atoms, z = P^T (x - mean), the
                       decoder of the 10 heavy atoms (src/nn/decoder.rs), the mean-force
                       potential (pair MLP [26, 32, 32, 1], no priors, no torsions), the
                       loss L_r + 0.1 (L_link + L_ent + L_assign) + 0.1 * 0.001 L_mf of
                       src/nn/map_model.rs (Å and kcal/mol units), Adam over everything.
Data are random (reference geometry + noise), as on the Rust side: only timing matters.

Run (PyTorch is never a dependency of cgloop; install it in a venv of your own):
  python3 bench/torch_peer.py --seconds 10 [--threads T ...] [--case NAME]
T defaults to the CPUs this process may use, as rayon counts them on the Rust side;
--threads may be repeated (each count is measured in turn). Prints one JSON line per case
and thread count, in the format of benches/nn.rs.
Side by side on a shared machine, whose speed drifts by tens of percent within minutes:
  python3 bench/torch_peer.py --rounds 10 --seconds 3 --threads 1 --threads 2
runs `cargo bench --bench nn` (--cgloop CMD to change it) and the peer alternately, ten
times, and prints per round and then as medians cgloop's speed-up over the peer's faster
thread count (peer ms per step / cgloop ms per step).
That both sides compute the same function: with the networks and batch that cgloop
exports, the losses and parameter gradients agree to rounding (~1e-15 and ~1e-11):
  CGLOOP_BENCH_EXPORT=/tmp/nn CGLOOP_BENCH_SECONDS=0.1 cargo bench --bench nn
  python3 bench/torch_peer.py --check /tmp/nn
"""
import argparse, json, os, re, time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH, WARMUP, LR = 64, 20, 2e-3
DATA = Path(__file__).resolve().parent.parent / 'datasets' / 'alanine_dipeptide'


def mlp(sizes):
    """Linear layers with SiLU between them (src/nn/mlp.rs)."""
    layers = [m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.SiLU())]
    return nn.Sequential(*layers[:-1])


class CgPotential(nn.Module):
    def __init__(self, n, basis=16, cutoff=1.2, hidden=(64, 64), torsions=True):
        super().__init__()
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        self.first = torch.tensor([p[0] for p in pairs])
        self.second = torch.tensor([p[1] for p in pairs])
        self.onehot = torch.eye(len(pairs), dtype=torch.float64)
        spacing = cutoff / (max(basis, 2) - 1)
        self.centres = torch.arange(basis, dtype=torch.float64) * spacing
        self.gamma = 1.0 / spacing ** 2
        self.net = mlp([basis + len(pairs), *hidden, 1])
        self.quads = n - 3 if torsions and n >= 4 else 0
        if self.quads:  # T(cos psi, sin psi, one-hot quadruple), same hidden sizes
            self.torsion_net = mlp([2 + self.quads, *hidden, 1])
            self.quad_onehot = torch.eye(self.quads, dtype=torch.float64)

    def energy(self, z):  # (F, n, 3) -> (F,)
        d = (z[:, self.first] - z[:, self.second]).norm(dim=-1)  # (F, P)
        basis = torch.exp(-self.gamma * (d.unsqueeze(-1) - self.centres) ** 2)
        onehot = self.onehot.expand(z.shape[0], -1, -1)
        energy = self.net(torch.cat([basis, onehot], -1)).squeeze(-1).sum(1)
        if self.quads:  # dihedrals of consecutive quadruples, IUPAC sign
            q = self.quads
            b1, b2, b3 = (z[:, k + 1:k + 1 + q] - z[:, k:k + q] for k in range(3))
            m, nn_ = torch.cross(b1, b2, dim=-1), torch.cross(b2, b3, dim=-1)
            norms = ((m * m).sum(-1) * (nn_ * nn_).sum(-1)).sqrt()
            cos = (m * nn_).sum(-1) / norms
            sin = b2.norm(dim=-1) * (b1 * nn_).sum(-1) / norms
            features = torch.cat([cos.unsqueeze(-1), sin.unsqueeze(-1),
                                  self.quad_onehot.expand(z.shape[0], -1, -1)], -1)
            energy = energy + self.torsion_net(features).squeeze(-1).sum(1)
        return energy

    def forces(self, z):
        (g,) = torch.autograd.grad(self.energy(z).sum(), z, create_graph=True)
        return -g


class EgnnLayer(nn.Module):
    def __init__(self, d, m, hidden):
        super().__init__()
        self.edge = mlp([2 * d + 2, hidden, m])
        self.coordinate = mlp([m, hidden, 1])
        self.node = mlp([d + m, hidden, d])

    def forward(self, g, h, x):
        sep = x[g['recv']] - x[g['send']]
        r2 = (sep ** 2).sum(-1, keepdim=True)
        msg = F.silu(self.edge(torch.cat([h[g['recv']], h[g['send']], r2, g['bonded']], -1)))
        w = self.coordinate(msg)
        n = x.shape[0]
        x = x + torch.zeros_like(x).index_add(0, g['recv'], sep * w) / (max(n, 2) - 1)
        summed = torch.zeros(n, msg.shape[1], dtype=x.dtype).index_add(0, g['recv'], msg)
        return h + self.node(torch.cat([h, summed], -1)), x


class Egnn(nn.Module):
    def __init__(self, inputs, d, m, hidden, layers, outputs):
        super().__init__()
        self.embedding = nn.Linear(inputs, d)
        self.layers = nn.ModuleList([EgnnLayer(d, m, hidden) for _ in range(layers)])
        self.readout = nn.Linear(d, outputs)
        nn.init.zeros_(self.readout.weight); nn.init.zeros_(self.readout.bias)

    def forward(self, g, features, x):
        h = self.embedding(features)
        for layer in self.layers:
            h, x = layer(g, h, x)
        return self.readout(h)


class BeadDecoder(nn.Module):
    def __init__(self, beads, seeds, hidden):
        super().__init__()
        pairs = [(i, j) for i in range(beads) for j in range(i + 1, beads)]
        self.first = torch.tensor([p[0] for p in pairs])
        self.second = torch.tensor([p[1] for p in pairs])
        self.beads, self.seeds = beads, seeds
        self.net = mlp([len(pairs), *hidden, seeds * beads])

    def forward(self, z):
        diff = z[:, self.first] - z[:, self.second]
        d = ((diff ** 2).sum(-1) + 0.01 ** 2).sqrt() * 10.0
        a = self.net(d).reshape(z.shape[0], self.seeds, self.beads)
        centre = z.mean(1, keepdim=True)
        return a @ (z - centre) + centre


def read_prmtop(path):
    """The %FLAG sections of an AMBER prmtop as lists of strings (fixed-width fields)."""
    flags, name, width = {}, None, None
    for line in path.read_text().splitlines():
        if line.startswith('%FLAG'):
            name = line.split()[1]; flags[name] = []
        elif line.startswith('%FORMAT'):
            width = int(re.match(r'%FORMAT\(\d+[aIE](\d+)', line).group(1))  # (10I8) -> 8
        elif name and not line.startswith('%'):
            flags[name] += [line[i:i + width].strip() for i in range(0, len(line), width)
                            if line[i:i + width].strip()]
    return flags


def alanine_dipeptide():
    """Positions (N, 3) nm, atomic numbers, residue indices, charges (e)."""
    top = read_prmtop(DATA / 'ala2_ff14SB.prmtop')
    lines = (DATA / 'ala2_ff14SB.inpcrd').read_text().splitlines()
    n = int(lines[1].split()[0])
    values = [float(l[i:i + 12]) for l in lines[2:] for i in range(0, len(l), 12) if l[i:i + 12].strip()]
    positions = [[values[3 * i + k] / 10.0 for k in range(3)] for i in range(n)]
    z = [int(v) for v in top['ATOMIC_NUMBER']]
    starts = [int(v) - 1 for v in top['RESIDUE_POINTER']] + [n]
    residues = [r for r in range(len(starts) - 1) for _ in range(starts[r], starts[r + 1])]
    charges = [float(v) / 18.2223 for v in top['CHARGE']]
    return positions, z, residues, charges


def features_of(z, residues, charges):
    """One-hot element, one-hot residue, charge (map_model.rs atom_features)."""
    elements, res = sorted(set(z)), sorted(set(residues))
    rows = [[float(e == a) for e in elements] + [float(r == b) for r in res] + [q]
            for a, b, q in zip(z, residues, charges)]
    return torch.tensor(rows, dtype=torch.float64)


def graph_of(x, z, cutoff):
    """Bonds (covalent radii, md/covalent.rs) plus pairs within the cutoff, both directions."""
    radius = {1: 0.031, 6: 0.076, 7: 0.071, 8: 0.066, 9: 0.057, 15: 0.107, 16: 0.105, 17: 0.102}
    n, d2 = len(x), lambda a, b: sum((a[k] - b[k]) ** 2 for k in range(3))
    bonds = {(i, j) for i in range(n) for j in range(i + 1, n)
             if d2(x[i], x[j]) < (1.15 * (radius.get(z[i], 0.075) + radius.get(z[j], 0.075))) ** 2}
    pairs = sorted(bonds | {(i, j) for i in range(n) for j in range(i + 1, n) if d2(x[i], x[j]) < cutoff ** 2})
    edges = [(a, b, float((i, j) in bonds)) for i, j in pairs for a, b in ((i, j), (j, i))]
    return {'recv': torch.tensor([e[0] for e in edges]), 'send': torch.tensor([e[1] for e in edges]),
            'bonded': torch.tensor([[e[2]] for e in edges], dtype=torch.float64)}


def cluster_prior(x, beads, width=0.1):
    """map_model.rs cluster_prior: k-means from farthest-point seeds, ordered by mean index."""
    n, d2 = len(x), lambda a, b: sum((a[k] - b[k]) ** 2 for k in range(3))
    c0 = [sum(p[k] for p in x) / n for k in range(3)]
    far = lambda score: max(range(n), key=lambda i: (score(x[i]), -i))
    centres = [x[far(lambda p: d2(p, c0))]]
    while len(centres) < beads:
        centres.append(x[far(lambda p: min(d2(p, c) for c in centres))])
    nearest = lambda p: min(range(beads), key=lambda b: (d2(p, centres[b]), b))
    for _ in range(50):
        members = [[p for p in x if nearest(p) == b] for b in range(beads)]
        centres = [[sum(p[k] for p in m) / len(m) for k in range(3)] if m else centres[b]
                   for b, m in enumerate(members)]
    owner = [nearest(p) for p in x]
    mean = [sum(i for i in range(n) if owner[i] == b) / max(1, owner.count(b)) for b in range(beads)]
    centres = [centres[b] for b in sorted(range(beads), key=lambda b: (mean[b], b))]
    return torch.tensor([[-d2(p, c) / (2 * width ** 2) for c in centres] for p in x], dtype=torch.float64)


def centre(x):
    return x - x.mean(1, keepdim=True)


def measure(name, seconds, threads, one_step):
    for _ in range(WARMUP):
        one_step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        loss = one_step(); steps += 1
    sps = steps / (time.perf_counter() - start)
    assert loss == loss, f'{name}: loss {loss}'
    print(json.dumps({'engine': 'pytorch', 'torch_version': torch.__version__, 'case': name,
                      'batch': BATCH, 'threads': threads, 'steps_per_s': round(sps, 2),
                      'ms_per_step': round(1e3 / sps, 3)}), flush=True)


def tensor_of(entry):
    return torch.tensor(entry['values'], dtype=torch.float64).reshape(entry['shape'])


LOADED = {}  # cgloop parameter name -> torch parameter, for --check


def load_linear(lin, params, name):
    LOADED.update({name + '.weight': lin.weight, name + '.bias': lin.bias})
    with torch.no_grad():
        lin.weight.copy_(tensor_of(params[name + '.weight']))
        lin.bias.copy_(tensor_of(params[name + '.bias']))


def load_mlp(seq, params, name):
    for i, lin in enumerate(m for m in seq if isinstance(m, nn.Linear)):
        load_linear(lin, params, f'{name}.layer{i}')


def load_potential(pot, params):
    load_mlp(pot.net, params, 'pair_network')
    if pot.quads:
        load_mlp(pot.torsion_net, params, 'torsion_network')


def run(name, seconds, threads, check, losses, params):
    """Times Adam steps on losses()[0], or (check) compares losses() with cgloop's."""
    if check is not None:  # same losses; same gradients, relative to each tensor's largest
        terms = losses()  # entry (at least 1e-6 of the largest of all: some are ~0 exactly)
        terms[0].backward()
        mine = [float(l.detach()) for l in terms]
        worst = max(abs(a - b) / max(abs(b), 1e-300) for a, b in zip(mine, check['losses']))
        theirs = {k: tensor_of(e) for k, e in check['gradients'].items()}
        floor = 1e-6 * max(float(t.abs().max()) for t in theirs.values())
        worst_grad = 0.0
        for key, t in theirs.items():
            g = LOADED[key].grad if LOADED[key].grad is not None else torch.zeros_like(t)
            worst_grad = max(worst_grad, float((g - t).abs().max()) / max(float(t.abs().max()), floor))
        print(json.dumps({'case': name, 'cgloop': check['losses'], 'pytorch': mine,
                          'loss_relative_difference': worst, 'gradient_relative_difference': worst_grad}))
        return worst < 1e-9 and worst_grad < 1e-7
    opt = torch.optim.Adam(params, lr=LR)

    def one_step():
        opt.zero_grad(set_to_none=True)
        total = losses()[0]
        total.backward(); opt.step()
        return total.item()
    if seconds is None:  # --rounds: the caller times it
        return one_step
    measure(name, seconds, threads, one_step)


def force_matching(seconds, threads, gen, check=None):
    pot = CgPotential(5, hidden=(64, 64))
    chain = torch.tensor([[0.33 * i, 0.19 * (i % 2), 0.0] for i in range(5)], dtype=torch.float64)
    z = chain + 0.02 * torch.randn(BATCH, 5, 3, generator=gen, dtype=torch.float64)
    target = 300.0 * torch.randn(BATCH, 5, 3, generator=gen, dtype=torch.float64)
    if check is not None:
        load_potential(pot, check['params'])
        z, target = tensor_of(check['z']), tensor_of(check['target'])
    z.requires_grad_()
    return run('force_matching_step', seconds, threads, check,
               lambda: [((pot.forces(z) - target) ** 2).mean()], list(pot.parameters()))


def map_step(seconds, threads, gen, check=None, beads=5):
    ref, z, residues, charges = alanine_dipeptide()
    c = [sum(p[k] for p in ref) / len(ref) for k in range(3)]
    ref = [[p[k] - c[k] for k in range(3)] for p in ref]
    features, graph = features_of(z, residues, charges), graph_of(ref, z, 0.5)
    prior, reference = cluster_prior(ref, beads), torch.tensor(ref, dtype=torch.float64)
    seed_index = torch.tensor([i for i, a in enumerate(z) if a != 1])
    egnn = Egnn(features.shape[1], 32, 17, 32, 2, beads)
    decoder = BeadDecoder(beads, len(seed_index), (64, 64))
    potential = CgPotential(beads, hidden=(32, 32), torsions=False)  # mean_force_potential
    x = reference + 0.01 * torch.randn(BATCH, len(ref), 3, generator=gen, dtype=torch.float64)
    f = 300.0 * torch.randn(BATCH, len(ref), 3, generator=gen, dtype=torch.float64)
    if check is not None:
        params = check['params']
        load_linear(egnn.embedding, params, 'map.embedding')
        load_linear(egnn.readout, params, 'map.readout')
        for k, layer in enumerate(egnn.layers):
            for part in ('edge', 'coordinate', 'node'):
                load_mlp(getattr(layer, part), params, f'map.layer{k}.{part}')
        load_mlp(decoder.net, params, 'decoder.network')
        load_potential(potential, params)
        x, f = tensor_of(check['x']), tensor_of(check['f'])
    dist_a = 10.0 * ((x.unsqueeze(2) - x.unsqueeze(1)) ** 2).sum(-1).mean(0).sqrt()  # rms, Å
    kcal = 1.0 / 41.84

    def losses():
        p = torch.softmax(egnn(graph, features, reference) + prior, dim=0)  # (N, n)
        zb = torch.einsum('in,fid->fnd', p, centre(x))
        predicted = decoder(zb)
        l_r = 100.0 * ((centre(predicted) - centre(x[:, seed_index])) ** 2).sum() / predicted[..., 0].numel()
        l_link = ((dist_a * (p @ p.T)) ** 2).sum().sqrt()
        l_ent = -(p * p.clamp(1e-30, 1.0).log()).sum() / beads
        l_assign = (F.relu((p ** 2).sum(1) - 1.0) ** 2).sum()
        mapped = (p.T @ f.permute(1, 0, 2).reshape(len(p), -1))  # (n, F*3)
        f_inst = torch.linalg.solve(p.T @ p, mapped).reshape(beads, BATCH, 3).permute(1, 0, 2)
        l_mf = ((f_inst * kcal - potential.forces(zb) * kcal) ** 2).sum() / BATCH
        total = l_r + 0.1 * (l_link + l_ent + l_assign) + 0.1 * 0.001 * l_mf
        return [total, l_r, l_link, l_ent, l_assign, l_mf]
    params = [*egnn.parameters(), *decoder.parameters(), *potential.parameters()]
    return run('map_step', seconds, threads, check, losses, params)


def timed(one_step, seconds):
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        one_step(); steps += 1
    return 1e3 * (time.perf_counter() - start) / steps


def rounds(a, thread_counts):
    """cgloop and PyTorch alternately, a.rounds times: a slow spell of a shared machine then
    hits both. Per round and case, PyTorch's faster thread count is its time; the summary
    gives the medians and the median of the per-round speed-ups (peer ms / cgloop ms)."""
    import statistics, subprocess
    cases = [c for c in ['force_matching_step', 'map_step'] if a.case is None or c in a.case]
    builders = {'force_matching_step': force_matching, 'map_step': map_step}
    steppers = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        gen = torch.Generator().manual_seed(2024)
        for name in cases:
            step = builders[name](None, threads, gen)
            for _ in range(WARMUP):
                step()
            steppers[name, threads] = step
    env = dict(os.environ, CGLOOP_BENCH_SECONDS=str(a.seconds))
    record = {name: [] for name in cases}
    for r in range(a.rounds):
        out = subprocess.run(a.cgloop + ' ' + ' '.join(cases), shell=True, env=env, check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        ours = {}
        for line in out.splitlines():
            if line.startswith('{'):
                d = json.loads(line)
                ours[d['case']] = (d['ms_per_step'], d['threads'])
        for name in cases:
            peer = []
            for threads in thread_counts:
                torch.set_num_threads(threads)
                peer.append((timed(steppers[name, threads], a.seconds), threads))
            best = min(peer)
            record[name].append((ours[name][0], best[0], best[0] / ours[name][0]))
            print(json.dumps({'round': r, 'case': name, 'cgloop_ms_per_step': ours[name][0],
                              'cgloop_threads': ours[name][1],
                              'pytorch_ms_per_step': {t: round(ms, 3) for ms, t in peer},
                              'speedup': round(best[0] / ours[name][0], 3)}), flush=True)
    for name in cases:
        ms, peer, ratio = zip(*record[name])
        print(json.dumps({'case': name, 'rounds': a.rounds, 'seconds': a.seconds,
                          'cgloop_median_ms': round(statistics.median(ms), 3),
                          'pytorch_best_median_ms': round(statistics.median(peer), 3),
                          'pytorch_threads': thread_counts,
                          'speedup_median': round(statistics.median(ratio), 3),
                          'speedup_min': round(min(ratio), 3), 'speedup_max': round(max(ratio), 3)}),
              flush=True)
    return 0


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--seconds', type=float, default=10.0)
    ap.add_argument('--threads', type=int, action='append')
    ap.add_argument('--case', choices=['force_matching_step', 'map_step'], action='append')
    ap.add_argument('--rounds', type=int, help='interleave: N rounds of (cgloop for --seconds per '
                    'case, then each --threads count for --seconds per case); prints every '
                    'round and the medians (robust on a noisy machine)')
    ap.add_argument('--cgloop', default='cargo bench --bench nn', metavar='CMD',
                    help="the command that prints cgloop's JSON lines (with --rounds)")
    ap.add_argument('--check', metavar='DIR', help='instead of timing, compare losses and '
                    'gradients with those cgloop exported to DIR (see above)')
    a = ap.parse_args()
    all_cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    torch.set_default_dtype(torch.float64)
    if a.rounds:
        raise SystemExit(rounds(a, a.threads or [1, all_cpus]))
    ok = True
    for threads in a.threads or [all_cpus]:
        torch.set_num_threads(threads)
        gen = torch.Generator().manual_seed(2024)
        for name, case in [('force_matching_step', force_matching), ('map_step', map_step)]:
            if a.case is None or name in a.case:
                check = json.loads(Path(a.check, name + '.json').read_text()) if a.check else None
                ok = case(a.seconds, threads, gen, check) is not False and ok
    raise SystemExit(0 if ok else 1)
