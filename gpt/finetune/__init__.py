"""Fine-tuning a pretrained GPT (the book's chapters 6 and 7, and appendix E).

* :mod:`gpt.finetune.classify` -- chapter 6: a text classifier (the spam detector): labelled data,
  replacing the output head, loss and accuracy on the last token, training, ``classify``.
* :mod:`gpt.finetune.instruct` -- chapter 7: instruction data, the Alpaca prompt, the book's collate
  function, generating and scoring responses.
* :mod:`gpt.finetune.dpo` -- chapter 7's bonus: preference pairs, their masks, response
  log-probabilities, the DPO loss, a trainer with a frozen reference, and demo pairs.
* :mod:`gpt.finetune.lora` -- appendix E: LoRA layers, ``replace_linear_with_lora``, ``add_lora`` and
  ``merge_lora``.
* :mod:`gpt.finetune.spam_demo` -- a generated spam/ham data set for offline demos and tests.
"""
from gpt.finetune.classify import (
    ClassificationDataset,
    ClassifierTrainer,
    LabeledText,
    balance,
    calc_accuracy_loader,
    classify,
    classify_review,
    freeze_for_classification,
    label_names,
    load_classifier,
    prepare_for_classification,
    random_split,
    read_csv,
    read_labeled_file,
    read_tsv,
    replace_output_head,
    save_classifier,
    train_classifier_simple,
)
from gpt.finetune.instruct import (
    InstructionDataset,
    InstructionSplit,
    custom_collate_fn,
    demo_instruction_data,
    demo_tokenizer,
    exact_match,
    exact_match_accuracy,
    extract_response,
    format_input,
    format_response,
    generate_response,
    generate_responses,
    load_instruct_checkpoint,
    load_instruction_data,
    save_instruct_checkpoint,
    split_instruction_data,
    write_responses,
)
from gpt.finetune.lora import (
    LinearWithLoRA,
    LoRALayer,
    add_lora,
    freeze_all_but_lora,
    merge_lora,
    replace_linear_with_lora,
)

__all__ = [
    # chapter 6
    "LabeledText", "read_tsv", "read_csv", "read_labeled_file", "label_names", "balance", "random_split",
    "ClassificationDataset", "replace_output_head", "freeze_for_classification", "prepare_for_classification",
    "calc_accuracy_loader", "train_classifier_simple", "ClassifierTrainer", "classify", "classify_review",
    "save_classifier", "load_classifier",
    # chapter 7
    "load_instruction_data", "format_input", "format_response", "InstructionSplit", "split_instruction_data",
    "InstructionDataset", "custom_collate_fn", "save_instruct_checkpoint", "load_instruct_checkpoint",
    "extract_response", "generate_response", "generate_responses", "write_responses", "demo_instruction_data",
    "demo_tokenizer", "exact_match", "exact_match_accuracy",
    # appendix E
    "LoRALayer", "LinearWithLoRA", "replace_linear_with_lora", "add_lora", "freeze_all_but_lora", "merge_lora",
]
