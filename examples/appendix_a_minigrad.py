"""Appendix A, "Introduction to PyTorch", retold with minigrad (this project's NumPy autograd engine).

The book's appendix introduces the three things the rest of the book needs from PyTorch: tensors,
automatic differentiation, and a training loop for a small neural network. minigrad offers the same
names (``Tensor``, ``backward``, ``nn.Module``, ``optim.SGD``), so the code below reads like the
book's, with NumPy underneath:

    A.2  tensors: creation, dtypes, shapes, reshaping, transposing, matrix products, broadcasting
    A.3  a computation graph: logistic regression on one example
    A.4  automatic differentiation: dL/dw1 and dL/db, checked by finite differences
    A.5  a multilayer perceptron as an nn.Module
    A.6  a toy dataset and a data loader
    A.7  the training loop (SGD) and accuracy
    A.8  saving and loading the model's weights

    python examples/appendix_a_minigrad.py          (about a second; --fast is the same)
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import parse_args, section

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F
from minigrad.optim import SGD

from gpt import safetensors
from gpt.data import DataLoader


# ----------------------------------------------------------------------------- A.5 the model
class NeuralNetwork(nn.Module):
    """The book's multilayer perceptron: two hidden layers (30 and 20 units) with ReLU.
    x: (batch, num_inputs) -> logits (batch, num_outputs)."""

    def __init__(self, num_inputs: int, num_outputs: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(num_inputs, 30),    # 1st hidden layer
            nn.ReLU(),
            nn.Linear(30, 20),            # 2nd hidden layer
            nn.ReLU(),
            nn.Linear(20, num_outputs),   # output layer
        )

    def forward(self, x):
        return self.layers(x)             # logits: the softmax is left to the loss


# ----------------------------------------------------------------------------- A.6 the data
class ToyDataset:
    """Feature rows and integer labels; the data loader asks for ``len`` and one item at a time."""

    def __init__(self, X, y):
        self.features = np.asarray(X, dtype=np.float32)  # (n, 2)
        self.labels = np.asarray(y, dtype=np.int64)      # (n,)

    def __getitem__(self, index):
        return self.features[index], self.labels[index]

    def __len__(self):
        return self.labels.shape[0]


def compute_accuracy(model, dataloader) -> float:
    """Fraction of examples whose highest logit is the right class (the book's A.7 helper)."""
    model.eval()
    correct, total_examples = 0, 0
    for features, labels in dataloader:
        with mg.no_grad():
            logits = model(features)
        predictions = np.argmax(logits.data, axis=1)
        correct += int(np.sum(predictions == labels))
        total_examples += len(labels)
    return correct / total_examples


def main() -> int:
    parse_args("Appendix A: tensors, autograd and a small MLP with minigrad.")  # --fast changes nothing
    np.set_printoptions(precision=4, suppress=True)   # the book's torch.set_printoptions(sci_mode=False)

    section("A.2 Tensors")
    tensor0d = mg.tensor(1)                               # a scalar
    tensor1d = mg.tensor([1, 2, 3])                       # a vector
    tensor2d = mg.tensor([[1, 2], [3, 4]])                # a matrix
    tensor3d = mg.tensor([[[1, 2], [3, 4]], [[5, 6], [7, 8]]])
    for name, t in [("tensor0d", tensor0d), ("tensor1d", tensor1d), ("tensor2d", tensor2d), ("tensor3d", tensor3d)]:
        print(f"{name}: ndim {t.ndim}, shape {t.shape}")
    # Python ints become int64, Python floats float32 (as in PyTorch): float32 is the default
    print("dtype of [1, 2, 3]:", tensor1d.dtype)
    print("dtype of [1.0, 2.0, 3.0]:", mg.tensor([1.0, 2.0, 3.0]).dtype)
    print("converted:", tensor1d.astype(np.float32).dtype)

    tensor2d = mg.tensor([[1, 2, 3], [4, 5, 6]])
    print("tensor2d:\n", tensor2d.data, "shape", tensor2d.shape)
    print("reshape(3, 2):\n", tensor2d.reshape(3, 2).data)
    print("view(3, 2) (an alias of reshape):\n", tensor2d.view(3, 2).data)
    print("T:\n", tensor2d.T.data)
    print("tensor2d @ tensor2d.T:\n", (tensor2d @ tensor2d.T).data)     # [[14, 32], [32, 77]]

    # Broadcasting: shapes are aligned from the right and axes of size 1 are stretched
    row = mg.tensor([10.0, 20.0, 30.0])                                   # (3,)
    col = mg.tensor([[1.0], [2.0]])                                       # (2, 1)
    print("(2, 3) + (3,):\n", (tensor2d.astype(np.float32) + row).data)
    print("(2, 1) * (3,) -> (2, 3):\n", (col * row).data)

    section("A.3 A computation graph: logistic regression")
    y = mg.tensor([1.0])           # true label
    x1 = mg.tensor([1.1])          # input feature
    w1 = mg.tensor([2.2], requires_grad=True)   # weight
    b = mg.tensor([0.0], requires_grad=True)    # bias
    z = x1 * w1 + b                # net input
    a = mg.sigmoid(z)              # activation, the predicted probability
    # binary cross-entropy, written out: -(y log a + (1 - y) log(1 - a))
    loss = -(y * mg.log(a) + (1 - y) * mg.log(1 - a)).mean()
    print(f"loss: {loss.item():.4f}")                                     # book: 0.0852
    # Each result remembers the operation that made it: the graph the backward pass walks.
    node, chain = loss.grad_fn, []
    while node is not None:
        chain.append(type(node).__name__)
        parents = [p for p in node.parents if p.grad_fn is not None]
        node = parents[0].grad_fn if parents else None
    print("graph, from the loss back:", " <- ".join(chain))

    section("A.4 Automatic differentiation")
    loss.backward()                                 # fills .grad of every leaf that requires it
    print(f"dL/dw1 = {w1.grad[0]:.4f}")             # book: -0.0898
    print(f"dL/db  = {b.grad[0]:.4f}")              # book: -0.0817
    # By hand: dL/dz = a - y for a sigmoid followed by binary cross-entropy
    print(f"by hand: (a - y) * x1 = {((a.data - y.data) * x1.data)[0]:.4f}, a - y = {(a.data - y.data)[0]:.4f}")

    # gradcheck compares backward with central finite differences in float64
    def logistic_loss(w, bias):
        a = mg.sigmoid(mg.tensor([1.1], dtype=np.float64) * w + bias)
        return -mg.log(a).mean()                    # y = 1

    mg.gradcheck(logistic_loss, mg.tensor([2.2], dtype=np.float64, requires_grad=True),   # raises on a mismatch
                 mg.tensor([0.0], dtype=np.float64, requires_grad=True))
    print("gradcheck of the logistic loss: passed")

    section("A.5 A multilayer perceptron")
    mg.manual_seed(123)                             # the book: torch.manual_seed(123)
    model = NeuralNetwork(50, 3)
    print(model)
    num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print("Total number of trainable model parameters:", num_params)       # book: 2213
    print("first layer's weight:", model.layers[0].weight.shape)            # (30, 50)
    X = mg.rand(1, 50)
    out = model(X)
    print("output:", out.data, "made by", type(out.grad_fn).__name__)
    with mg.no_grad():                              # inference: no graph is recorded
        print("class probabilities:", F.softmax(model(X), -1).data)
    # A small MLP's gradients pass gradcheck too (in float64, every parameter)
    small = NeuralNetwork(2, 2).double()
    probe = mg.tensor(np.array([[0.3, -0.7], [1.2, 0.4]]), requires_grad=True)
    mg.gradcheck(lambda x, *ps: small(x), probe, *small.parameters())
    print("gradcheck of a NeuralNetwork(2, 2), input and all 6 parameter tensors: passed")

    section("A.6 A toy dataset and its data loader")
    X_train = [[-1.2, 3.1], [-0.9, 2.9], [-0.5, 2.6], [2.3, -1.1], [2.7, -1.5]]
    y_train = [0, 0, 0, 1, 1]
    X_test = [[-0.8, 2.8], [2.6, -1.6]]
    y_test = [0, 1]
    train_ds, test_ds = ToyDataset(X_train, y_train), ToyDataset(X_test, y_test)
    # drop_last: 5 examples in batches of 2 would leave a batch of one in every epoch
    train_loader = DataLoader(train_ds, batch_size=2, shuffle=True, drop_last=True, seed=123)
    test_loader = DataLoader(test_ds, batch_size=2, shuffle=False, drop_last=False)
    for idx, (x, labels) in enumerate(train_loader):
        print(f"Batch {idx + 1}: x = {[[round(float(v), 2) for v in row] for row in x]}, y = {labels.tolist()}")

    section("A.7 The training loop")
    mg.manual_seed(123)
    model = NeuralNetwork(num_inputs=2, num_outputs=2)
    optimizer = SGD(model.parameters(), lr=0.5)
    num_epochs = 3
    for epoch in range(num_epochs):
        model.train()
        for batch_idx, (features, labels) in enumerate(train_loader):
            logits = model(features)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad()          # gradients accumulate, so clear the last step's
            loss.backward()
            optimizer.step()               # w <- w - lr * dL/dw
            print(f"Epoch: {epoch + 1:03d}/{num_epochs:03d} | Batch {batch_idx:03d}/{len(train_loader):03d}"
                  f" | Train Loss: {loss.item():.2f}")
    model.eval()
    with mg.no_grad():
        outputs = model(np.asarray(X_train, dtype=np.float32))
    probas = F.softmax(outputs, -1).data
    predictions = np.argmax(probas, axis=1)
    print("probabilities:\n", probas)
    print("predictions:", predictions.tolist(), "labels:", y_train)
    train_acc, test_acc = compute_accuracy(model, train_loader), compute_accuracy(model, test_loader)
    print(f"Training accuracy: {train_acc:.0%}")   # book: 1.0
    print(f"Test accuracy: {test_acc:.0%}")        # book: 1.0

    section("A.8 Saving and loading the model")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"     # the book saves model.pth with torch.save
        safetensors.save_file(dict(model.state_dict()), path)
        print(f"saved {len(model.state_dict())} arrays ({path.stat().st_size:,} bytes) to {path.name}")
        restored = NeuralNetwork(2, 2)             # fresh random weights ...
        restored.load_state_dict(safetensors.load_file(path))   # ... replaced by the saved ones
    with mg.no_grad():
        same = np.array_equal(restored(np.asarray(X_test, dtype=np.float32)).data,
                              model(np.asarray(X_test, dtype=np.float32)).data)
    print("the reloaded model gives the same outputs:", same)
    print(f"reloaded test accuracy: {compute_accuracy(restored, test_loader):.0%}")
    return 0 if (train_acc == 1.0 and test_acc == 1.0 and same) else 1


if __name__ == "__main__":
    sys.exit(main())
