"""The shared Lightning training loop of every net (rule 3), imported only to train.

:class:`~model_zoo.lightning.TorchNetModel` calls :func:`fit_network`; serving a trained
net never imports this module, so it never pays for importing Lightning.

Two generic extensions serve nets whose output is not one number per window:

- Missing targets. The loss is the mean squared error over the *finite* targets; a NaN
  target is left out (of the training loss and of the validation loss). A network may map a
  sample to several outputs: a panel net (``gnn``) stacks one time step's assets in a sample
  padded to the number of assets, and the padding's targets are NaN. With all targets finite
  (every other net) this is the plain MSE. Targets may have any shape the network's output
  has (the denoising autoencoder of ``dae_lgbm`` reconstructs its flattened input).
- L1 penalty. ``l1`` adds ``l1 * sum |w|`` over the weight matrices and kernels (tensors of
  two or more dimensions; biases and normalisation scales are left alone) to the training
  loss; ``l2`` is the optimiser's weight decay. Both penalise the training loss only: the
  validation loss early stopping compares is the plain MSE.
- Auxiliary loss. A network that defines ``auxiliary_loss()`` (a scalar tensor computed in
  its latest training forward pass, e.g. TabNet's mask sparsity penalty) has it added to the
  training loss; the validation loss that early stopping compares stays the MSE.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from model_zoo.lightning import PREDICT_BATCH_SIZE, TrainingHParams, quiet_single_threaded


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (and dataloader workers) before building a network."""
    L.seed_everything(seed, workers=True, verbose=False)


class RegressionModule(L.LightningModule):
    """Lightning wrapper: MSE regression of a network's output on its finite targets (plus
    the network's ``auxiliary_loss()`` in training, if it defines one).

    Tracks the validation loss itself (exact mean over all validation rows) and keeps a
    CPU copy of the weights with the lowest one and its epoch, restored by
    :func:`fit_network`; counts the training epochs completed.
    """

    def __init__(self, network: nn.Module, training: TrainingHParams) -> None:
        super().__init__()
        self.network = network
        self.training_hparams = training
        self.best_val_loss = float("inf")
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = 0
        self.epochs_trained = 0
        self._val_sse = 0.0
        self._val_count = 0
        self.has_validation = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        squared_error, count = masked_squared_error(self(x), y)
        loss = squared_error / count.clamp(min=1)
        auxiliary_loss = getattr(self.network, "auxiliary_loss", None)
        if callable(auxiliary_loss):
            loss = loss + auxiliary_loss()
        if self.training_hparams.l1 > 0.0:
            loss = loss + self.training_hparams.l1 * l1_norm(self.network)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def on_train_epoch_end(self) -> None:
        self.epochs_trained += 1

    def on_validation_epoch_start(self) -> None:
        self._val_sse = 0.0
        self._val_count = 0

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        squared_error, count = masked_squared_error(self(x), y)
        self._val_sse += float(squared_error)
        self._val_count += int(count)

    def on_validation_epoch_end(self) -> None:
        val_loss = self._val_sse / max(self._val_count, 1)
        self.log("val_loss", val_loss)
        if val_loss < self.best_val_loss:
            self.best_val_loss = val_loss
            self.best_epoch = self.current_epoch + 1
            self.best_state = {
                key: value.detach().cpu().clone()
                for key, value in self.network.state_dict().items()
            }

    def configure_optimizers(self):
        hp = self.training_hparams
        params = self.network.parameters()
        if hp.optimizer == "adam":
            optimizer = torch.optim.Adam(params, lr=hp.learning_rate, weight_decay=hp.l2)
        elif hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(
                params, lr=hp.learning_rate, momentum=hp.momentum, weight_decay=hp.l2
            )
        else:
            optimizer = torch.optim.RMSprop(
                params, lr=hp.learning_rate, momentum=hp.momentum, weight_decay=hp.l2
            )
        if hp.scheduler == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, hp.max_epochs)
            return {"optimizer": optimizer, "lr_scheduler": scheduler}
        if hp.scheduler == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, factor=0.5, patience=max(hp.patience // 2, 1)
            )
            monitor = "val_loss" if self.has_validation else "train_loss"
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "monitor": monitor},
            }
        return optimizer


def l1_norm(network: nn.Module) -> torch.Tensor:
    """Sum of absolute values of ``network``'s weight matrices and kernels (ndim >= 2)."""
    weights = [p.abs().sum() for p in network.parameters() if p.requires_grad and p.ndim >= 2]
    return torch.stack(weights).sum() if weights else torch.zeros(())


def fit_network(
    network: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray] | None,
    training: TrainingHParams,
    seed: int,
) -> tuple[nn.Module, int, dict]:
    """Train ``network`` in place with the shared loop; return it, its epoch count and the
    optimiser's state.

    Parameters
    ----------
    network : nn.Module
        Maps a ``(batch, lookback, features)`` float32 tensor to ``(batch,)``; more
        generally a batch of samples ``X[i]`` to outputs shaped like ``y[i]``.
    train, valid : tuple[np.ndarray, np.ndarray]
        ``(X, y)`` arrays; ``y`` already standardised by the caller, NaN where a target is
        missing (left out of the loss). With ``valid``, training
        stops early on validation loss and the weights of the best epoch are restored.
        Without it (the refit on all history), training runs exactly ``max_epochs`` epochs
        and keeps the last weights: nothing stops it early, ``cosine`` anneals over those
        epochs, and ``plateau`` watches the training loss instead (it only lowers the
        learning rate).
    training : TrainingHParams
        Optimiser, scheduler, epochs, batch size, patience, clipping, accelerator.
    seed : int
        Seeds torch, numpy, Python and the shuffling order.

    Returns
    -------
    network : nn.Module
        ``network`` itself, on the CPU, in eval mode.
    epochs : int
        Epochs that produced its weights: the best epoch when restored from validation,
        otherwise every epoch trained.
    optimizer_state : dict
        The optimiser's ``state_dict`` at the end of training (moments, step counts), on
        the CPU, for a checkpoint that can resume training.
    """
    with quiet_single_threaded():
        L.seed_everything(seed, workers=True, verbose=False)
        module = RegressionModule(network, training)
        module.has_validation = valid is not None
        generator = torch.Generator().manual_seed(seed)
        train_loader = DataLoader(
            _tensor_dataset(*train),
            batch_size=training.batch_size,
            shuffle=True,
            generator=generator,
        )
        callbacks = []
        val_loader = None
        if valid is not None:
            val_loader = DataLoader(_tensor_dataset(*valid), batch_size=PREDICT_BATCH_SIZE)
            callbacks.append(
                EarlyStopping(monitor="val_loss", mode="min", patience=training.patience)
            )
        trainer = L.Trainer(
            max_epochs=training.max_epochs,
            accelerator=training.accelerator,
            devices=1,
            gradient_clip_val=training.gradient_clip_val or None,
            callbacks=callbacks,
            enable_checkpointing=False,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=1.0 if valid is not None else 0,
        )
        trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader)
    epochs = module.epochs_trained
    if module.best_state is not None:
        network.load_state_dict(module.best_state)
        epochs = module.best_epoch
    optimizer_state = _to_cpu(trainer.optimizers[0].state_dict())
    return network.cpu().eval(), epochs, optimizer_state


def _to_cpu(state):
    """A copy of a (nested) state dict with every tensor on the CPU."""
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, dict):
        return {key: _to_cpu(value) for key, value in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(_to_cpu(value) for value in state)
    return state


def _tensor_dataset(X: np.ndarray, y: np.ndarray) -> TensorDataset:
    return TensorDataset(
        torch.as_tensor(np.asarray(X, dtype=np.float32)),
        torch.as_tensor(np.asarray(y, dtype=np.float32)),
    )


def masked_squared_error(output: torch.Tensor, target: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of squared errors over the finite targets, and how many there are.

    A NaN target (a padded slot) contributes neither error nor gradient.
    """
    known = torch.isfinite(target)
    error = torch.where(known, output - target, torch.zeros_like(output))
    return (error**2).sum(), known.sum()
