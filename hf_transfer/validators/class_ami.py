"""ClassAMI: do the classifier's target predictions agree with the target's own cluster structure?

Musgrave, Belongie & Lim, *Three New Validators and a Large-Scale Benchmark Ranking for
Unsupervised Domain Adaptation*, 2022 (arXiv:2208.07360), where it ranked among the best
validators; it builds on the cluster-based model selection of Robbiano et al., *Adversarial
Branch Architecture Search for Unsupervised Domain Adaptation*, WACV 2022. Cluster the
target features :math:`\\{f_i\\}` into :math:`K` groups with k-means (:math:`K` = the number of
classes, seeded ``sklearn.cluster.KMeans``), and compare the cluster ids :math:`c_i` with the
predicted classes :math:`\\hat y_i = \\arg\\max_k z_{ik}` by adjusted mutual information
(Vinh, Epps & Bailey, JMLR 2010):

.. math::

    \\mathrm{AMI}(\\hat y, c) = \\frac{I(\\hat y; c) - \\mathbb E[I]}
                                  {\\tfrac12 \\big(H(\\hat y) + H(c)\\big) - \\mathbb E[I]},

where :math:`\\mathbb E[I]` is the mutual information expected between two random labelings with
the same cluster sizes (``sklearn.metrics.adjusted_mutual_info_score``, arithmetic mean). It is 1
when the predictions split the target exactly along its clusters (whatever the class ids), about
0 for predictions unrelated to them, and 0 when every row is predicted as one class.
**Higher is better.** It is invariant to relabelling, so it measures whether the classifier's
decision boundaries follow the target's structure, not whether the names are right.
"""

from __future__ import annotations

from .base import ValidationInputs, Validator


class ClassAMI(Validator):
    """AMI between k-means clusters of the target features and the argmax predictions; higher is better."""

    name = "class_ami"
    higher_is_better = True
    required = ("target_logits", "target_features")

    def __init__(self, seed: int = 0, n_init: int = 10) -> None:
        if n_init < 1:
            raise ValueError(f"n_init must be at least 1, got {n_init}.")
        self.seed = seed
        self.n_init = n_init

    def compute(self, inputs: ValidationInputs) -> float:
        from sklearn.cluster import KMeans
        from sklearn.metrics import adjusted_mutual_info_score

        logits = inputs.require("target_logits", self.name)
        features = inputs.require("target_features", self.name)
        if len(logits) != len(features):
            raise ValueError(f"target_logits has {len(logits)} rows but target_features has {len(features)}.")
        num_classes = logits.shape[1]
        if len(features) < num_classes:
            raise ValueError(
                f"class_ami clusters the target into {num_classes} groups (one per class); "
                f"it needs at least that many target rows, got {len(features)}."
            )
        clusters = KMeans(n_clusters=num_classes, n_init=self.n_init, random_state=self.seed).fit_predict(features)
        predictions = logits.argmax(axis=1)
        return float(adjusted_mutual_info_score(predictions, clusters))
