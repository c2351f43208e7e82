"""How to cite BELLE: its repository and papers (used by model and dataset cards)."""

BELLE_CITATION = """\
@misc{BELLE,
  author = {BELLEGroup},
  title = {BELLE: Be Everyone's Large Language model Engine},
  year = {2023},
  publisher = {GitHub},
  journal = {GitHub repository},
  howpublished = {\\url{https://github.com/LianjiaTech/BELLE}},
}

@article{belle2023exploring,
  title = {Exploring the Impact of Instruction Data Scaling on Large Language Models: An Empirical Study on Real-World Use Cases},
  author = {Yunjie Ji and Yong Deng and Yan Gong and Yiping Peng and Qiang Niu and Lei Zhang and Baochang Ma and Xiangang Li},
  journal = {arXiv preprint arXiv:2303.14742},
  year = {2023}
}

@article{ji2023better,
  title = {Towards Better Instruction Following Language Models for Chinese: Investigating the Impact of Training Data and Evaluation},
  author = {Yunjie Ji and Yan Gong and Yong Deng and Yiping Peng and Qiang Niu and Baochang Ma and Xiangang Li},
  journal = {arXiv preprint arXiv:2304.07854},
  year = {2023}
}

@article{belle2023comparative,
  title = {A Comparative Study between Full-Parameter and LoRA-based Fine-Tuning on Chinese Instruction Data for Instruction Following Large Language Model},
  author = {Xianghui Sun and Yunjie Ji and Baochang Ma and Xiangang Li},
  journal = {arXiv preprint arXiv:2304.08109},
  year = {2023}
}"""
