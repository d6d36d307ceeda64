// Parse a Jenkinsfile as Groovy, syntax only (no Jenkins, no pipeline plugins), and print one JSON object
// per line: {"sh": script} for every `sh` step, and {"stage": name, "calls": [...], "always": [...]} for
// every stage, naming the steps called inside it and inside its `always` blocks. A syntax error exits
// non-zero with Groovy's message.
import groovy.json.JsonOutput
import org.codehaus.groovy.ast.CodeVisitorSupport
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.ConstantExpression
import org.codehaus.groovy.ast.expr.GStringExpression
import org.codehaus.groovy.ast.expr.MapExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.TupleExpression
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.Phases

def unit = new CompilationUnit()
unit.addSource(new File(args[0]))
unit.compile(Phases.CONVERSION)

def text = { expr ->
    if (expr instanceof ConstantExpression) return expr.value as String
    if (expr instanceof GStringExpression) return expr.verbatimText
    return null
}

// Names of every method called inside a piece of code.
def callsIn = { code ->
    def names = []
    code.visit(new CodeVisitorSupport() {
        void visitMethodCallExpression(MethodCallExpression call) {
            names << call.methodAsString
            super.visitMethodCallExpression(call)
        }
    })
    return names.unique()
}

def visitor = new CodeVisitorSupport() {
    void visitMethodCallExpression(MethodCallExpression call) {
        def arguments = call.arguments instanceof TupleExpression ? call.arguments.expressions : []
        if (call.methodAsString == 'sh') {
            arguments.each { arg ->
                // sh 'script' or sh(script: 'script', returnStatus: true)
                def found = arg instanceof MapExpression ?
                    arg.mapEntryExpressions.find { it.keyExpression.text == 'script' }?.valueExpression : arg
                def script = found != null ? text(found) : null
                if (script != null) println JsonOutput.toJson([sh: script])
            }
        }
        def body = arguments.find { it instanceof ClosureExpression }
        if (call.methodAsString == 'stage' && body != null) {
            def always = []
            body.code.visit(new CodeVisitorSupport() {
                void visitMethodCallExpression(MethodCallExpression inner) {
                    def block = inner.arguments instanceof TupleExpression ?
                        inner.arguments.expressions.find { it instanceof ClosureExpression } : null
                    if (inner.methodAsString == 'always' && block != null) always.addAll(callsIn(block.code))
                    super.visitMethodCallExpression(inner)
                }
            })
            println JsonOutput.toJson([stage: text(arguments[0]), calls: callsIn(body.code), always: always.unique()])
        }
        super.visitMethodCallExpression(call)
    }
}
// The script's statements live in its run() method, its `def` functions beside it.
unit.AST.modules.each { module -> module.classes*.methods.flatten().each { it.code?.visit(visitor) } }
