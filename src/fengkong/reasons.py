"""The reason-code catalogue: the one place where every decline, review and line action gets its words.

Each code carries an analyst text (precise, may name the signal) and a customer text in Chinese and English
that states the principal reason without revealing a fraud rule or anyone else's data, plus advice on what the
customer can do. Decisions list codes; texts are looked up here at display time, so wording can be improved
without touching stored decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fengkong.domain import Language


class Category(StrEnum):
    ELIGIBILITY = "eligibility"
    IDENTITY = "identity"
    FRAUD = "fraud"
    CAPACITY = "capacity"
    CREDIT_HISTORY = "credit_history"
    MULTI_HEAD = "multi_head"
    SCORE = "score"
    VERIFICATION = "verification"
    LINE = "line"  # why a live credit line was raised, reduced, frozen, closed or restored


@dataclass(frozen=True, slots=True)
class ReasonCode:
    code: str
    category: Category
    analyst: str
    customer_zh: str
    customer_en: str
    advice_zh: str = ""
    advice_en: str = ""

    def customer_text(self, language: Language) -> str:
        return self.customer_zh if language is Language.ZH else self.customer_en

    def advice(self, language: Language) -> str:
        return self.advice_zh if language is Language.ZH else self.advice_en


_VERIFY_ZH = "我们暂时无法核实您提交的身份信息。"
_VERIFY_EN = "We could not verify the identity details you gave us."
_VERIFY_ADVICE_ZH = "请确认信息填写无误，或通过人工复核渠道提交身份证明材料。"
_VERIFY_ADVICE_EN = "Please check the details you entered, or ask for a human review and provide proof of identity."

_CATALOGUE: tuple[ReasonCode, ...] = (
    # eligibility
    ReasonCode(
        "AGE_OUT_OF_RANGE",
        Category.ELIGIBILITY,
        "Declared age is outside the product's eligible age range.",
        "您的年龄不在本产品的申请范围内。",
        "Your age is outside the range for which this product is available.",
        "您可以了解我们其他适合您的产品。",
        "You may look at our other products that may suit you.",
    ),
    ReasonCode(
        "EMPLOYMENT_NOT_ELIGIBLE",
        Category.ELIGIBILITY,
        "Employment status is not eligible for this product (e.g. student or unemployed).",
        "您目前的就业状况不符合本产品的申请条件。",
        "Your current employment status does not meet this product's requirements.",
        "就业状况变化后，您可以更新信息并重新申请。",
        "When your employment changes you can update your details and apply again.",
    ),
    # identity and fraud: customer texts stay generic on purpose
    ReasonCode(
        "ID_NUMBER_INVALID",
        Category.IDENTITY,
        "ID number fails the GB 11643 check digit or encodes an impossible birth date.",
        _VERIFY_ZH,
        _VERIFY_EN,
        _VERIFY_ADVICE_ZH,
        _VERIFY_ADVICE_EN,
    ),
    ReasonCode(
        "ID_AGE_MISMATCH",
        Category.IDENTITY,
        "Declared age differs by more than one year from the birth date encoded in the ID number.",
        _VERIFY_ZH,
        _VERIFY_EN,
        _VERIFY_ADVICE_ZH,
        _VERIFY_ADVICE_EN,
    ),
    ReasonCode(
        "DEVICE_NOT_VERIFIED",
        Category.FRAUD,
        "Device or network signals are inconsistent with the applicant (missing device id, shared or risky device).",
        "我们暂时无法验证您使用的设备。",
        "We could not verify the device you are using.",
        "请使用您常用的手机重新申请，或申请人工复核。",
        "Please apply again from the phone you usually use, or ask for a human review.",
    ),
    ReasonCode(
        "IDENTITY_RISK",
        Category.FRAUD,
        "Identifiers match a consortium or internal risk list.",
        _VERIFY_ZH,
        _VERIFY_EN,
        _VERIFY_ADVICE_ZH,
        _VERIFY_ADVICE_EN,
    ),
    ReasonCode(
        "LINKED_TO_FRAUD",
        Category.FRAUD,
        "Shares identifiers (device, phone, card) with customers confirmed as fraud, or a known fraud ring.",
        _VERIFY_ZH,
        _VERIFY_EN,
        _VERIFY_ADVICE_ZH,
        _VERIFY_ADVICE_EN,
    ),
    ReasonCode(
        "APPLICATION_VELOCITY",
        Category.FRAUD,
        "Unusual number of applications from the same device, phone or network in a short time.",
        "我们暂时无法完成对本次申请环境的验证。",
        "We could not verify the circumstances of this application.",
        "请稍后使用您本人常用的设备重新申请，或申请人工复核。",
        "Please try again later from your own usual device, or ask for a human review.",
    ),
    ReasonCode(
        "ACCOUNT_PROTECTION",
        Category.VERIFICATION,
        "The customer is a recorded scam or identity-theft victim: a person checks every new credit request.",
        "为保护您的账户安全，本次申请需要人工核实。",
        "To protect your account, a person will check this application with you.",
        "我们的工作人员会通过您预留的联系方式与您联系，请勿向任何人透露验证码。",
        "Our staff will contact you on the details you gave us; never share a verification code with anyone.",
    ),
    ReasonCode(
        "ACCOUNT_TAKEOVER_SUSPECTED",
        Category.FRAUD,
        "New device and password change followed by a drawdown or transfer within 24 hours (takeover pattern).",
        "为保护您的账户安全，我们暂停了借款和转账，需要与您核实近期的操作。",
        "To protect your account we have paused borrowing and transfers until we confirm recent activity with you.",
        "请通过官方客服渠道联系我们完成身份核实；我们不会向您索要验证码或密码。",
        "Please contact us through our official service channel to verify; we never ask for codes or passwords.",
    ),
    ReasonCode(
        "CASH_OUT_SUSPECTED",
        Category.FRAUD,
        "Money paid to a merchant came back from that merchant to the payer within 24 hours (cash-out, 套现).",
        "您的部分交易需要我们进一步核实。",
        "Some of your transactions need to be checked by us.",
        "请保留交易凭证，我们的工作人员可能会联系您。",
        "Please keep your receipts; our staff may contact you.",
    ),
    ReasonCode(
        "SCAM_VICTIM_SUSPECTED",
        Category.VERIFICATION,
        "Most of a new drawdown is leaving to a payee this customer never paid before (possible induced fraud).",
        "为保护您的资金安全，我们需要与您确认这笔转账。",
        "To keep your money safe, we need to confirm this transfer with you.",
        "如有人以投资、退款、贷款或冒充公检法等理由要求您转账，请立即停止并联系我们。",
        "If someone asked you to transfer money for an investment, refund, loan or 'safe account', stop and call us.",
    ),
    # capacity
    ReasonCode(
        "INCOME_TOO_LOW",
        Category.CAPACITY,
        "Declared monthly income is below the product minimum.",
        "您的收入暂未达到本产品的最低要求。",
        "Your income is below the minimum this product requires.",
        "收入提高后，您可以更新收入信息并重新申请。",
        "If your income rises you can update it and apply again.",
    ),
    ReasonCode(
        "HIGH_DEBT_TO_INCOME",
        Category.CAPACITY,
        "Total debt reported by the bureau is high relative to declared annual income.",
        "您现有的负债相对收入偏高。",
        "Your existing debts are high compared with your income.",
        "偿还部分现有贷款后，您可以再次申请。",
        "You can apply again after paying down some of your existing debts.",
    ),
    ReasonCode(
        "INSUFFICIENT_CREDIT_CAPACITY",
        Category.CAPACITY,
        "The limit the policy would grant is below the product's minimum line.",
        "根据您目前的收入和信用状况，我们暂时无法提供满足最低额度的授信。",
        "Based on your current income and credit, we cannot offer the minimum credit line.",
        "收入提高或负债降低后，您可以重新申请。",
        "You can apply again when your income rises or your debts fall.",
    ),
    # credit history
    ReasonCode(
        "BUREAU_SERIOUS_DELINQUENCY",
        Category.CREDIT_HISTORY,
        "Credit bureau shows a delinquency of 90 days or more.",
        "您的征信记录显示有较严重的逾期还款。",
        "Your credit report shows a seriously late payment.",
        "按时还清逾期欠款并保持良好记录后，您可以再次申请。",
        "Once overdue amounts are repaid and your record stays clean, you can apply again.",
    ),
    ReasonCode(
        "BUREAU_RECENT_DELINQUENCY",
        Category.CREDIT_HISTORY,
        "Credit bureau shows a delinquency of 30 days or more.",
        "您的征信记录显示有逾期还款。",
        "Your credit report shows a late payment.",
        "保持按时还款有助于提升您的信用。",
        "Paying on time from now on will improve your credit.",
    ),
    ReasonCode(
        "TOO_MANY_ACTIVE_LOANS",
        Category.CREDIT_HISTORY,
        "Number of active loans at other lenders exceeds the policy maximum.",
        "您在其他机构的在贷笔数较多。",
        "You have many loans open with other lenders.",
        "结清部分贷款后，您可以再次申请。",
        "You can apply again after closing some of your loans.",
    ),
    # multi-head borrowing
    ReasonCode(
        "MULTI_HEAD_RECENT_INQUIRIES",
        Category.MULTI_HEAD,
        "Many lenders inquired about the applicant in the last 7 days (multi-head borrowing).",
        "您近期在多家机构申请了借款。",
        "You have recently applied for credit with many lenders.",
        "建议减少短期内的借款申请，一段时间后再来申请。",
        "Consider making fewer credit applications for a while, then apply again.",
    ),
    ReasonCode(
        "MULTI_HEAD_INQUIRIES",
        Category.MULTI_HEAD,
        "Many lenders inquired about the applicant in the last 30 or 90 days.",
        "您在过去几个月内的借款申请较多。",
        "You have applied for credit many times in the past few months.",
        "建议减少借款申请，一段时间后再来申请。",
        "Consider making fewer credit applications for a while, then apply again.",
    ),
    # verification (review outcomes)
    ReasonCode(
        "INCOME_VERIFICATION_NEEDED",
        Category.VERIFICATION,
        "Declared income is high relative to the applicant profile; verify before granting.",
        "我们需要进一步核实您的收入信息。",
        "We need to verify your income before we decide.",
        "审核人员可能会联系您，请准备好收入证明。",
        "A reviewer may contact you; please have proof of income ready.",
    ),
    ReasonCode(
        "LARGE_REQUEST_REVIEW",
        Category.VERIFICATION,
        "Requested amount is large relative to declared income; a reviewer checks affordability.",
        "您申请的额度较高，我们需要人工审核。",
        "The amount you asked for is large, so a person will review your application.",
        "审核通常在一个工作日内完成，我们会通知您结果。",
        "Review usually takes one working day; we will tell you the result.",
    ),
    # scorecard characteristics: a score decline or review names the characteristics that cost most points
    ReasonCode(
        "SCORE_INCOME",
        Category.SCORE,
        "Scorecard: monthly income band cost points.",
        "收入水平是影响您评分的主要因素之一。",
        "Your income level was one of the main factors in your score.",
        "收入提高后可更新信息。",
        "You can update your income when it rises.",
    ),
    ReasonCode(
        "SCORE_DEBT_BURDEN",
        Category.SCORE,
        "Scorecard: debt-to-income band cost points.",
        "您的负债水平是影响评分的主要因素之一。",
        "Your level of debt was one of the main factors in your score.",
        "降低负债有助于提升评分。",
        "Paying down debt will help your score.",
    ),
    ReasonCode(
        "SCORE_INQUIRIES",
        Category.SCORE,
        "Scorecard: number of recent lender inquiries cost points.",
        "近期借款申请次数是影响评分的主要因素之一。",
        "The number of your recent credit applications was one of the main factors in your score.",
        "减少短期内的借款申请有助于提升评分。",
        "Making fewer credit applications will help your score.",
    ),
    ReasonCode(
        "SCORE_DELINQUENCY",
        Category.SCORE,
        "Scorecard: worst bureau delinquency cost points.",
        "过往的还款记录是影响评分的主要因素之一。",
        "Your past repayment record was one of the main factors in your score.",
        "按时还款有助于提升评分。",
        "Paying on time will help your score.",
    ),
    ReasonCode(
        "SCORE_ACTIVE_LOANS",
        Category.SCORE,
        "Scorecard: number of active loans elsewhere cost points.",
        "在贷笔数是影响评分的主要因素之一。",
        "The number of loans you already have was one of the main factors in your score.",
        "结清部分贷款有助于提升评分。",
        "Closing some loans will help your score.",
    ),
    ReasonCode(
        "SCORE_EMPLOYMENT",
        Category.SCORE,
        "Scorecard: employment type and tenure cost points.",
        "就业稳定性是影响评分的主要因素之一。",
        "The stability of your employment was one of the main factors in your score.",
        "",
        "",
    ),
    ReasonCode(
        "SCORE_THIN_FILE",
        Category.SCORE,
        "Scorecard: little or missing credit history information cost points.",
        "您的信用记录信息较少。",
        "There is little credit history information about you.",
        "保持良好的借还记录有助于建立信用。",
        "Building a record of borrowing and repaying on time will help.",
    ),
    # trained models (issue 4): characteristics that cost most points (scorecard) or raised the risk most (GBDT)
    ReasonCode(
        "SCORE_REQUEST_SIZE",
        Category.SCORE,
        "Model: the amount requested (alone or relative to income) cost points.",
        "您申请的金额相对收入较高，是影响评分的主要因素之一。",
        "The amount you asked for, compared with your income, was one of the main factors in your score.",
        "申请较低的额度可能更容易获批。",
        "Asking for a smaller amount may help.",
    ),
    ReasonCode(
        "SCORE_PROFILE",
        Category.SCORE,
        "Model: an applicant-profile characteristic (e.g. age, declared details) cost points.",
        "您申请时提供的个人信息是影响评分的主要因素之一。",
        "The personal details in your application were among the main factors in your score.",
        "如信息有变化，请更新后再申请。",
        "If your details change, you can update them and apply again.",
    ),
    ReasonCode(
        "SCORE_APPLICATION_ACTIVITY",
        Category.SCORE,
        "Model: recent application or account activity (velocity or link-graph characteristics) cost points.",
        "近期的申请和账户活动情况是影响评分的主要因素之一。",
        "Recent activity on your applications and account was one of the main factors in your score.",
        "",
        "",
    ),
    ReasonCode(
        "SCORE_LINE_USAGE",
        Category.SCORE,
        "Model: how the customer has used the credit line (utilisation, tenure, late payments) cost points.",
        "您的额度使用情况是影响评分的主要因素之一。",
        "How you have used your credit line was one of the main factors in your score.",
        "按时还款并保持适度的额度使用有助于提升评分。",
        "Paying on time and using less of your limit will help your score.",
    ),
    ReasonCode(
        "SCORE_OTHER_FACTOR",
        Category.SCORE,
        "Model: a characteristic without a more specific reason code cost points (the analyst view names it).",
        "您申请中的其他信息是影响评分的主要因素之一。",
        "Other information in your application was one of the main factors in your score.",
        "",
        "",
    ),
    # line management: actions on live credit lines (issue 5)
    ReasonCode(
        "LINE_DELINQUENT",
        Category.LINE,
        "Line review: a loan on the line is past due.",
        "您的账户有逾期未还的款项。",
        "A repayment on your account is overdue.",
        "结清逾期款项后，我们会在复核日重新评估您的额度。",
        "Once the overdue amount is repaid, we will look at your line again on the review date.",
    ),
    ReasonCode(
        "LINE_SEVERE_DELINQUENCY",
        Category.LINE,
        "Line review: 60 or more days past due.",
        "您的账户逾期时间较长。",
        "A repayment on your account has been overdue for a long time.",
        "请尽快联系我们协商还款安排。",
        "Please contact us soon to agree a repayment plan.",
    ),
    ReasonCode(
        "LINE_HIGH_UTILISATION",
        Category.LINE,
        "Behaviour score: high utilisation of the line cost points.",
        "您的额度使用比例较高。",
        "You are using a large share of your credit line.",
        "降低借款余额有助于恢复额度。",
        "Reducing what you owe will help.",
    ),
    ReasonCode(
        "LINE_MULTI_HEAD_GROWTH",
        Category.MULTI_HEAD,
        "Line review: bureau inquiries grew fast since the line opened (多头借贷).",
        "您近期在多家机构申请了借款。",
        "You have recently applied for credit with several lenders.",
        "减少短期内的借款申请有助于恢复额度。",
        "Making fewer credit applications in a short time will help.",
    ),
    ReasonCode(
        "LINE_INCOME_DROP",
        Category.LINE,
        "Line review: reported income fell markedly since the line opened.",
        "您的收入情况较开户时有明显变化。",
        "Your income has changed markedly since your line was opened.",
        "如收入已恢复，可提交最新收入证明申请复核。",
        "If your income has recovered, you can send proof of it and ask for a review.",
    ),
    ReasonCode(
        "LINE_RISK_EVENTS",
        Category.FRAUD,
        "Line review: risk alerts on the customer in the last 30 days.",
        "为保障您的账户和资金安全，我们暂停了该额度的使用。",
        "To protect your account and your money, we have paused the use of this line.",
        "请通过官方渠道完成身份核验，我们会尽快恢复服务。",
        "Please verify your identity through our official channels and we will restore the service as soon as we can.",
    ),
    ReasonCode(
        "LINE_SHORT_HISTORY",
        Category.LINE,
        "Behaviour score: few months on book cost points.",
        "您使用本产品的时间还较短。",
        "You have only had this line for a short time.",
        "保持按时还款，额度会随时间得到重新评估。",
        "Keep repaying on time and your line will be looked at again over time.",
    ),
    ReasonCode(
        "LINE_LOW_BEHAVIOUR_SCORE",
        Category.LINE,
        "Line review: the behaviour score is below the strategy's cut-off.",
        "根据您近期的用款和还款情况，我们调整了您的额度。",
        "We adjusted your line based on how you have used and repaid it recently.",
        "按时还款、降低借款余额有助于恢复额度。",
        "Repaying on time and reducing what you owe will help.",
    ),
    ReasonCode(
        "LINE_GOOD_BEHAVIOUR",
        Category.LINE,
        "Line review: good behaviour score, well used and repaid on time.",
        "感谢您保持良好的还款记录，您的额度已提升。",
        "Thank you for repaying on time: your credit line has been raised.",
        "",
        "",
    ),
    ReasonCode(
        "LINE_REVIEW_CLEARED",
        Category.LINE,
        "Line review: the frozen line's review date came and no freeze condition holds.",
        "复核完成，您的额度已恢复使用。",
        "Our review is complete and your line is available again.",
        "",
        "",
    ),
    ReasonCode(
        "LINE_ANALYST_DECISION",
        Category.LINE,
        "An analyst acted on the line by hand; see the action's note.",
        "我们的工作人员对您的额度进行了人工调整。",
        "A member of our staff reviewed and adjusted your line.",
        "如有疑问，您可以申请人工复核。",
        "If you disagree, you can ask for a human review.",
    ),
    ReasonCode(
        "LINE_CUSTOMER_REQUEST",
        Category.LINE,
        "The customer asked for this change.",
        "根据您的申请，我们调整了您的额度。",
        "We changed your line as you asked.",
        "",
        "",
    ),
    ReasonCode(
        "LINE_APPEAL_UPHELD",
        Category.LINE,
        "An appeal was upheld on human review; the line is restored.",
        "经人工复核，您的申诉成立，额度已恢复。",
        "Your appeal was upheld on human review and your line has been restored.",
        "",
        "",
    ),
    # post-loan early warning and repayments (issue 6)
    ReasonCode(
        "EW_MISSED_FIRST_PAYMENT",
        Category.CREDIT_HISTORY,
        "Early warning: a loan's first instalment was not paid in full by its due date (first-payment default).",
        "您有一笔借款的首期还款未按时足额归还。",
        "The first repayment on one of your loans was not made in full on time.",
        "请尽快还款；如遇困难，请联系我们商量还款安排。",
        "Please repay as soon as you can; if you are in difficulty, contact us to agree a plan.",
    ),
    ReasonCode(
        "EW_LOAN_DELINQUENT",
        Category.CREDIT_HISTORY,
        "Early warning: a loan is past due (see loan_dpd and loan_bucket).",
        "您有借款已逾期。",
        "A repayment on one of your loans is overdue.",
        "结清逾期款项可避免产生更多罚息。",
        "Repaying the overdue amount stops further penalty interest.",
    ),
    ReasonCode(
        "EW_MULTI_HEAD_AFTER_LOAN",
        Category.MULTI_HEAD,
        "Early warning: inquiries or loans at other lenders rose while a loan here is outstanding (多头借贷).",
        "您近期在多家机构申请了借款。",
        "You have recently applied for credit with several lenders.",
        "减少短期内的借款申请有助于维持良好的信用。",
        "Making fewer credit applications in a short time will help.",
    ),
    ReasonCode(
        "EW_LOAN_STACKING",
        Category.MULTI_HEAD,
        "Early warning: several new loans in 30 days (loan_new_loans_30d).",
        "您近期借款较为频繁。",
        "You have taken several loans in a short time.",
        "请根据实际需要合理借款。",
        "Please borrow only what you need.",
    ),
    ReasonCode(
        "EW_PROCEEDS_FORBIDDEN_USE",
        Category.LINE,
        "Early warning: loan proceeds moved soon after the loan to another lender, securities or property, "
        "which consumer credit may not fund.",
        "您的借款资金流向不符合借款用途约定。",
        "Money from your loan was used in a way the loan agreement does not allow.",
        "消费贷款不得用于购房、投资证券或偿还其他借款；如有疑问请联系我们。",
        "Consumer loans may not pay for property, securities or other loans; contact us if you have questions.",
    ),
    ReasonCode(
        "EW_UTILISATION_RISING",
        Category.CAPACITY,
        "Early warning: the share of the credit lines drawn rose fast (loan_utilisation_change_30d).",
        "您近期的借款余额增长较快。",
        "What you owe on your credit line has grown quickly.",
        "请根据实际需要合理借款；如遇困难，请联系我们。",
        "Please borrow only what you need; if you are in difficulty, contact us.",
    ),
    ReasonCode(
        "EW_INCOME_DROP",
        Category.CAPACITY,
        "Early warning: verified income fell markedly since the line opened while a loan is outstanding "
        "(loan_income_change).",
        "您的收入情况较开户时有明显变化。",
        "Your income has changed markedly since your line was opened.",
        "如遇还款困难，请尽早联系我们商量还款安排。",
        "If repaying becomes hard, contact us early to agree a plan.",
    ),
    ReasonCode(
        "REPAYMENT_UNMATCHED",
        Category.VERIFICATION,
        "A repayment event named a loan that could not take it (unknown, another customer's, closed, or more "
        "than owed); the money needs matching by operations.",
        "我们收到了一笔暂时无法匹配到借款的还款。",
        "We received a repayment that we could not yet match to your loan.",
        "我们会核实后处理，如有疑问请联系我们。",
        "We will check it and apply it; contact us if you have questions.",
    ),
)

CATALOGUE: dict[str, ReasonCode] = {r.code: r for r in _CATALOGUE}


class UnknownReasonCode(KeyError):
    pass


def reason(code: str) -> ReasonCode:
    try:
        return CATALOGUE[code]
    except KeyError:
        raise UnknownReasonCode(code) from None


def is_known(code: str) -> bool:
    return code in CATALOGUE
