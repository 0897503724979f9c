#include "logpage.h"

#include "logmodel.h"

#include <QAction>
#include <QApplication>
#include <QClipboard>
#include <QComboBox>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMessageBox>
#include <QPushButton>
#include <QSaveFile>
#include <QScrollBar>
#include <QStandardPaths>
#include <QStyle>
#include <QTableView>
#include <QVBoxLayout>

#include <algorithm>

namespace keyrelay {

LogPage::LogPage(LogModel *model, QWidget *parent)
    : QWidget(parent), m_model(model), m_filter(new LogFilterModel(this)), m_filterEdit(new QLineEdit(this)),
      m_statusFilter(new QComboBox(this)), m_clear(new QPushButton(tr("C&lear"), this)),
      m_export(new QPushButton(tr("&Export CSV…"), this)),
      m_allowWebsite(new QPushButton(tr("&Allow this website"), this)), m_count(new QLabel(this)),
      m_notice(new QLabel(this)), m_view(new QTableView(this))
{
    m_filter->setSourceModel(m_model);
    m_filterEdit->setPlaceholderText(tr("Filter: path, model, key, status, error…"));
    m_filterEdit->setClearButtonEnabled(true);
    connect(m_filterEdit, &QLineEdit::textChanged, m_filter, &LogFilterModel::setText);
    m_statusFilter->addItem(tr("All requests"));
    m_statusFilter->addItem(tr("Errors only"));
    connect(m_statusFilter, &QComboBox::currentIndexChanged, this,
            [this](int index) { m_filter->setErrorsOnly(index == 1); });
    connect(m_clear, &QPushButton::clicked, m_model, &LogModel::clear);
    connect(m_export, &QPushButton::clicked, this, &LogPage::exportWithDialog);
    m_allowWebsite->setToolTip(tr("Let the website of the selected blocked request use KeyRelay"));
    connect(m_allowWebsite, &QPushButton::clicked, this, [this] {
        const QString origin = selectedBlockedOrigin();
        if (origin.isEmpty())
            return;
        // Until the window confirms it (websiteAllowed()), the site's next request will tell.
        showNotice(tr("Allowing %1: its next request shows here whether it went through.").arg(origin));
        Q_EMIT allowWebsiteRequested(origin);
    });
    m_notice->setWordWrap(true);
    m_notice->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_notice->hide();

    m_view->setModel(m_filter);
    m_view->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_view->setSelectionMode(QAbstractItemView::ExtendedSelection);
    m_view->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_view->setWordWrap(false);
    m_view->setAlternatingRowColors(true);
    m_view->verticalHeader()->hide();
    m_view->verticalHeader()->setDefaultSectionSize(m_view->fontMetrics().height() + 6);
    m_view->verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
    m_view->horizontalHeader()->setStretchLastSection(true);
    const int widths[LogModel::ColumnCount] = { 90, 58, 170, 100, 80, 100, 50, 64, 66, 72, 90, 150 };
    for (int column = 0; column < LogModel::ColumnCount; ++column)
        m_view->setColumnWidth(column, widths[column]);
    // Wide enough for the longest method (OPTIONS) in the table's font, with the cell's margins.
    const QFontMetrics metrics = m_view->fontMetrics();
    const int cellMargins
        = 2 * (m_view->style()->pixelMetric(QStyle::PM_FocusFrameHMargin, nullptr, m_view) + 1)
        + metrics.horizontalAdvance(QLatin1Char(' '));
    m_view->setColumnWidth(LogModel::MethodColumn,
                           std::max({ metrics.horizontalAdvance(QStringLiteral("OPTIONS")) + cellMargins,
                                      m_view->horizontalHeader()->sectionSizeHint(LogModel::MethodColumn),
                                      widths[LogModel::MethodColumn] }));

    // Follow new rows while the view is at the bottom; stop when the user scrolls up.
    QScrollBar *bar = m_view->verticalScrollBar();
    connect(bar, &QScrollBar::valueChanged, this,
            [this, bar](int value) { m_follow = value >= bar->maximum(); });
    connect(bar, &QScrollBar::rangeChanged, this, [this, bar](int, int maximum) {
        if (m_follow)
            bar->setValue(maximum);
    });

    auto *copy = new QAction(tr("&Copy row"), m_view);
    copy->setShortcut(QKeySequence::Copy);
    copy->setShortcutContext(Qt::WidgetWithChildrenShortcut);
    connect(copy, &QAction::triggered, this, &LogPage::copySelection);
    m_view->addAction(copy);
    m_view->setContextMenuPolicy(Qt::CustomContextMenu);
    connect(m_view, &QWidget::customContextMenuRequested, this, [this, copy](const QPoint &pos) {
        QMenu menu(this);
        copy->setEnabled(m_view->selectionModel()->hasSelection());
        menu.addAction(copy);
        const QString origin = selectedBlockedOrigin();
        if (!origin.isEmpty()) {
            menu.addAction(tr("Allow %1").arg(origin), this,
                           [this, origin] { Q_EMIT allowWebsiteRequested(origin); });
        }
        menu.exec(m_view->viewport()->mapToGlobal(pos));
        copy->setEnabled(true);
    });

    connect(m_model, &QAbstractItemModel::rowsInserted, this,
            [this](const QModelIndex &, int first, int last) { learnAllowedWebsites(first, last); });
    connect(m_filter, &QAbstractItemModel::rowsInserted, this, &LogPage::updateCount);
    connect(m_filter, &QAbstractItemModel::rowsRemoved, this, &LogPage::updateCount);
    connect(m_filter, &QAbstractItemModel::modelReset, this, &LogPage::updateCount);
    connect(m_filter, &QAbstractItemModel::layoutChanged, this, &LogPage::updateCount);

    auto *top = new QHBoxLayout;
    top->addWidget(m_filterEdit, 1);
    top->addWidget(m_statusFilter);
    top->addWidget(m_clear);
    top->addWidget(m_allowWebsite);
    top->addWidget(m_export);
    auto *layout = new QVBoxLayout(this);
    layout->addLayout(top);
    layout->addWidget(m_notice);
    layout->addWidget(m_view, 1);
    // Opening the page puts the focus on the table (arrow keys browse the log), not on the filter:
    // a focused text field blinks its cursor, which would wake an otherwise idle KeyRelay twice a second.
    setFocusProxy(m_view);
    layout->addWidget(m_count);
    connect(m_view->selectionModel(), &QItemSelectionModel::selectionChanged, this,
            &LogPage::updateAllowWebsite);
    updateCount();
    updateAllowWebsite();
}

LogPage::~LogPage()
{
    // Hiding the view while QWidget tears it down still moves the scroll bar: stop listening first.
    disconnect(m_view->verticalScrollBar(), nullptr, this, nullptr);
    disconnect(m_filter, nullptr, this, nullptr);
    disconnect(m_model, nullptr, this, nullptr);
    disconnect(m_view->selectionModel(), nullptr, this, nullptr);
}

QString LogPage::selectedBlockedOrigin() const
{
    const QModelIndexList selected = m_view->selectionModel()->selectedRows();
    if (selected.size() != 1)
        return QString();
    const int row = m_filter->mapToSource(selected.first()).row();
    if (row < 0 || row >= m_model->rowCount())
        return QString();
    const RequestRecord &record = m_model->record(row);
    return offersAllow(record) ? record.origin : QString();
}

bool LogPage::offersAllow(const RequestRecord &record) const
{
    if (!record.originBlocked || record.origin.isEmpty())
        return false;
    const auto allowed = m_allowedAt.constFind(record.origin);
    // Blocked after it was allowed (the user took it out of the list again): offered again.
    return allowed == m_allowedAt.cend() || record.startedAt > *allowed;
}

void LogPage::websiteAllowed(const QString &origin)
{
    QDateTime &at = m_allowedAt[origin];
    at = qMax(at, QDateTime::currentDateTimeUtc());
    showNotice(tr("%1 may now use KeyRelay; its next requests go through.").arg(origin));
    updateAllowWebsite();
}

void LogPage::learnAllowedWebsites(int first, int last)
{
    bool learned = false;
    for (int row = first; row <= last && row < m_model->rowCount(); ++row) {
        const RequestRecord &record = m_model->record(row);
        if (record.origin.isEmpty() || record.originBlocked || LogModel::isKeyEvent(record))
            continue;
        QDateTime &at = m_allowedAt[record.origin];
        if (!at.isValid() || record.startedAt > at) {
            at = record.startedAt;
            learned = true;
        }
    }
    if (learned)
        updateAllowWebsite();
}

void LogPage::showNotice(const QString &text)
{
    m_notice->setText(text);
    m_notice->setVisible(!text.isEmpty());
}

QString LogPage::noticeText() const
{
    return m_notice->isHidden() ? QString() : m_notice->text();
}

QString LogPage::countText() const
{
    return m_count->text();
}

void LogPage::updateAllowWebsite()
{
    const QString origin = selectedBlockedOrigin();
    m_allowWebsite->setVisible(!origin.isEmpty());
    m_allowWebsite->setText(origin.isEmpty() ? tr("&Allow this website") : tr("&Allow %1").arg(origin));
}

void LogPage::updateCount()
{
    // Key events are rows of the log, not requests.
    const int requests = m_model->requestCount();
    const int events = m_model->rowCount() - requests;
    const int shown = m_filter->rowCount();
    QString text;
    if (shown == m_model->rowCount()) {
        text = tr("%n request(s) in the log (the newest %1 are kept)", nullptr, requests)
                   .arg(m_model->capacity());
        if (events > 0)
            text += QStringLiteral(" · ") + tr("%n key event(s)", nullptr, events);
    } else {
        int shownRequests = 0;
        for (int row = 0; row < shown; ++row) {
            const int source = m_filter->mapToSource(m_filter->index(row, 0)).row();
            shownRequests += LogModel::isKeyEvent(m_model->record(source)) ? 0 : 1;
        }
        text = tr("%1 of %2 request(s) shown").arg(shownRequests).arg(requests);
    }
    m_count->setText(text);
}

QString LogPage::selectionText() const
{
    QList<int> rows;
    const QModelIndexList selected = m_view->selectionModel()->selectedRows();
    for (const QModelIndex &index : selected)
        rows.append(m_filter->mapToSource(index).row());
    std::sort(rows.begin(), rows.end());
    QStringList lines;
    for (int row : std::as_const(rows)) {
        QStringList cells;
        for (int column = 0; column < LogModel::ColumnCount; ++column)
            cells << m_model->cellText(row, column);
        lines << cells.join(QLatin1Char('\t'));
    }
    return lines.join(QLatin1Char('\n'));
}

void LogPage::copySelection()
{
    const QString text = selectionText();
    if (!text.isEmpty())
        QApplication::clipboard()->setText(text);
}

bool LogPage::exportCsv(const QString &path, QString *error) const
{
    QList<int> rows;
    rows.reserve(m_filter->rowCount());
    for (int row = 0; row < m_filter->rowCount(); ++row)
        rows.append(m_filter->mapToSource(m_filter->index(row, 0)).row());
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly)) {
        *error = file.errorString();
        return false;
    }
    file.write(m_model->toCsv(rows).toUtf8());
    if (!file.commit()) {
        *error = file.errorString();
        return false;
    }
    return true;
}

void LogPage::exportWithDialog()
{
    const QString folder = QStandardPaths::writableLocation(QStandardPaths::DocumentsLocation);
    const QString path = QFileDialog::getSaveFileName(
        this, tr("Export log"), folder + QStringLiteral("/keyrelay-log.csv"), tr("CSV files (*.csv)"));
    if (path.isEmpty())
        return;
    QString error;
    if (!exportCsv(path, &error))
        QMessageBox::warning(this, tr("Export log"), tr("Could not write %1: %2").arg(path, error));
}

} // namespace keyrelay
